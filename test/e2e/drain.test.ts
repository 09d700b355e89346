/**
 * @module test/e2e/drain.test
 * Stopping `serve` while builds run: the compiled binary, real builders on the local Docker
 * engine and the official depot CLI, unchanged. SIGTERM mid-build: the build still finishes
 * within the drain time, a build started during the drain is refused with a clear message,
 * /readyz says draining, serve exits 0. A drain time shorter than the build: the build ends as
 * canceled and the depot CLI prints why. A second SIGTERM ends the drain at once. Under
 * systemd's Type=notify, STOPPING=1 says how many builds drain and extends the stop timeout.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { integrationSuite } from "../support/integration.ts";
import { listenForNotifications } from "../support/notify-socket.ts";
import { serve, type Served } from "../support/serve.ts";
import { DEPOT, depotEnv, finished, waitFor } from "../support/depot.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT}; npm installs it on linux-x64)`
  : await builderImageMissing();

integrationSuite(
  "drain: SIGTERM to serve lets running depot builds finish, refuses new ones, cancels the rest with a reason",
  missing,
  () => {
    const work = mkdtempSync(join(tmpdir(), "slipway-drain-"));
    const dataDir = join(work, "data");
    let s: Served | null = null;
    let imageRef = "";
    let admin = "";
    let project = "";
    let token = "";
    // What systemd hears (Type=notify): STOPPING=1 and the drain's progress.
    const notify = listenForNotifications(join(work, "notify.sock"));

    const start = async (drainSeconds: number) => {
      s = await serve(
        slipwayBinary(),
        dataDir,
        [
          "--set",
          `builders.dockerd_image=${imageRef}`,
          "--set",
          "volumes.encryption=none",
          "--set",
          `server.drain_seconds=${drainSeconds}`,
        ],
        { NOTIFY_SOCKET: notify.address },
        { publicHost: "localhost" },
      );
      return s;
    };
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await s!.get(path, {
        method,
        headers: { authorization: `Bearer ${admin}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: r.status, json: (await r.json()) as any };
    };
    const depotBuild = (ctx: string, extra: string[] = []) =>
      Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", ...extra, ctx], {
        stdout: "pipe",
        stderr: "pipe",
        env: depotEnv({ url: s!.url, dataDir }, join(work, "home"), token),
      });
    const context = (name: string, body: string) => {
      const dir = join(work, name);
      writeBusyboxContext(dir, body);
      return dir;
    };
    /** The newest build once its log shows `marker` (its RUN step is under way). */
    const runningBuildWith = async (marker: string): Promise<string> => {
      let id = "";
      await waitFor(
        `a running build whose log shows ${marker}`,
        async () => {
          const b = (await api("GET", `/api/v1/projects/${project}/builds?limit=1`)).json.builds[0];
          if (b?.status !== "running") return false;
          id = b.id;
          const logs = await s!.get(`/api/v1/builds/${id}/logs`, { headers: { authorization: `Bearer ${admin}` } });
          return (await logs.text()).includes(marker);
        },
        180_000,
      );
      return id;
    };
    /** A build's row, read from the stopped server's database. */
    const storedBuild = (id: string) => {
      const db = new Database(join(dataDir, "slipway.db"), { readonly: true });
      try {
        return db.query("SELECT status, error FROM builds WHERE id = ?").get(id) as {
          status: string;
          error: string | null;
        };
      } finally {
        db.close();
      }
    };

    beforeAll(async () => {
      imageRef = (await ensureDockerdBuilderImage()).ref;
      mkdirSync(join(work, "home"), { recursive: true });
      await start(120);
      admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
      project = (await api("POST", "/api/v1/orgs/default/projects", { name: "drained" })).json.id;
      token = (await api("POST", "/api/v1/tokens", { kind: "project", name: "ci", project })).json.token;
      // Warm the builder (it outlives serve and is adopted by each restart).
      const warm = await finished(depotBuild(context("warm", "RUN echo warm")));
      expect(warm.code, warm.log).toBe(0);
    }, 20 * 60_000);

    afterAll(async () => {
      if (s && s.proc.exitCode === null) {
        s.proc.kill("SIGKILL");
        await s.proc.exited;
      }
      await removeBuildersOf([project].filter(Boolean));
      await removeBuildersOfServed(); // and any builder whose project id this file never learned
      notify.close();
      rmSync(work, { recursive: true, force: true });
    });

    test("SIGTERM mid-build: the build finishes within the drain time, a new build is refused with the reason, /readyz says draining, serve exits 0", async () => {
      const srv = s!;
      const out = join(work, "out-drain");
      const running = finished(
        depotBuild(context("drain", "RUN echo drain-started && sleep 10 && echo drained-ok > /result.txt"), [
          "-o",
          `type=local,dest=${out}`,
        ]),
      );
      const id = await runningBuildWith("drain-started");
      const t0 = Date.now();
      notify.messages.length = 0;
      srv.proc.kill("SIGTERM");
      // systemd hears it: stopping, one build draining, the stop timeout extended over the drain
      // time left (120 s) plus the shutdown timeout (30 s) and a margin, never beyond.
      const stopping = await notify.waitFor((t) => t.startsWith("STOPPING=1"), 10_000);
      expect(stopping.text).toMatch(/\nSTATUS=draining 1 build \(up to 1[12]\d s left\)\n/);
      const extend = Number(/EXTEND_TIMEOUT_USEC=(\d+)/.exec(stopping.text)![1]);
      expect(extend).toBeGreaterThan(150_000_000);
      expect(extend).toBeLessThanOrEqual(165_000_000);

      // Not ready while draining, with the check saying why.
      let ready: { status: number; json: any } = { status: 0, json: null };
      await waitFor(
        "/readyz to report draining",
        async () => {
          const r = await srv.get("/readyz");
          ready = { status: r.status, json: await r.json() };
          return r.status === 503;
        },
        30_000, // at once, normally: room for a loaded machine
      );
      expect(ready.json.checks["serve:draining"][0]).toMatchObject({
        status: "fail",
        output: expect.stringContaining("draining"),
      });

      // A new build is refused, on the wire and in the depot CLI's output.
      const rpc = await srv.get("/depot.cli.v1.BuildService/CreateBuild", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ projectId: project, options: [] }),
      });
      expect(rpc.status).toBe(503);
      expect(await rpc.json()).toEqual({
        code: "unavailable",
        message: expect.stringContaining("shutting down: it admits no new builds"),
      });
      const refused = await finished(depotBuild(context("refused", "RUN echo never")));
      expect(refused.code).not.toBe(0);
      expect(refused.log).toContain("slipway is shutting down: it admits no new builds");
      const refusedAfter = refused.at - t0;

      // The running build completes normally.
      const r = await running;
      expect(r.code, r.log).toBe(0);
      expect(readFileSync(join(out, "result.txt"), "utf8")).toBe("drained-ok\n");
      const code = await srv.proc.exited;
      const exitedAfter = Date.now() - t0;
      expect(code).toBe(0);
      expect(r.at - t0).toBeLessThan(120_000);
      expect(exitedAfter).toBeLessThan(120_000);
      expect(storedBuild(id)).toEqual({ status: "finished", error: null });
      expect(srv.logs()).toContain('"ended":"empty"');
      console.log(
        `  SIGTERM → new build refused after ${refusedAfter} ms, running build done after ${r.at - t0} ms, serve exited 0 after ${exitedAfter} ms`,
      );
    }, 600_000);

    test("drain time shorter than the build: it ends as canceled, the depot CLI prints why, serve exits 0", async () => {
      const srv = await start(3);
      const running = finished(depotBuild(context("cut", "RUN echo cut-started && sleep 120")));
      const id = await runningBuildWith("cut-started");
      const t0 = Date.now();
      srv.proc.kill("SIGTERM");
      const r = await running;
      const clientAfter = r.at - t0;
      expect(r.code).not.toBe(0);
      expect(r.log).toContain("this build did not finish within its drain time (3 s); run the build again");
      expect(await srv.proc.exited).toBe(0);
      const exitedAfter = Date.now() - t0;
      expect(exitedAfter).toBeLessThan(20_000);
      expect(storedBuild(id)).toEqual({
        status: "canceled",
        error: expect.stringContaining("did not finish within its drain time (3 s)"),
      });
      console.log(`  drain 3 s → client exited after ${clientAfter} ms, serve exited 0 after ${exitedAfter} ms`);
      const line = r.log.split("\n").find((l) => l.includes("drain time"));
      console.log(`  depot CLI: ${line}`);
    }, 300_000);

    test("a second SIGTERM ends the drain at once: the build is canceled with that reason, serve exits 0", async () => {
      const srv = await start(600);
      const running = finished(depotBuild(context("second", "RUN echo second-started && sleep 120")));
      const id = await runningBuildWith("second-started");
      const t0 = Date.now();
      srv.proc.kill("SIGTERM");
      await waitFor("the drain to begin", async () => srv.logs().includes("draining: no new builds"), 30_000);
      srv.proc.kill("SIGTERM");
      const r = await running;
      expect(r.code).not.toBe(0);
      expect(r.log).toContain("its drain was ended early (a second stop signal)");
      expect(await srv.proc.exited).toBe(0);
      const exitedAfter = Date.now() - t0;
      expect(exitedAfter).toBeLessThan(60_000); // not the 600 s drain
      expect(storedBuild(id).status).toBe("canceled");
      console.log(`  second SIGTERM → serve exited 0 after ${exitedAfter} ms`);
    }, 300_000);
  },
);
