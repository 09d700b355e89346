/**
 * The build lifecycle on a real SQLite file and the real CA, with a narrow fake builder service
 * (the real one is exercised in test/e2e/builders.test.ts and build-flow.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import { tokensServiceFactory } from "../auth/api-tokens.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { ConflictError, InvalidInputError, NotFoundError, PreconditionError, UnavailableError } from "../errors.ts";
import { silentLogger } from "../log/logger.ts";
import { pkiServiceFactory } from "../pki/index.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import { createSealer } from "../secrets/index.ts";
import { buildsServiceFactory, type BuildsService } from "./service.ts";

let dir: string;
let db: Database;
let builds: BuildsService;
let clock = Date.parse("2026-11-22T10:00:00Z");
const ended: string[] = [];
const released: string[] = [];
let builderState: "starting" | "ready" | "failed" = "starting";
/** While set, a builder request waits for it before it holds the builder (as the manager does). */
let builderGate: Promise<void> | null = null;
/** Builds holding a builder, as the manager counts them: a held builder never idles. */
const held = new Set<string>();
/** Held connections waiting on the fake builder (its whenChanged), until builderChanged() wakes them. */
const builderWatchers = new Set<() => void>();
const builderChanged = () => {
  const woken = [...builderWatchers];
  builderWatchers.clear();
  for (const wake of woken) wake();
};
/** How many times a builder was asked for (a held connection asks again only when woken). */
let asks = 0;
const fakeWhenChanged = (_ref: unknown, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const wake = () => {
      builderWatchers.delete(wake);
      signal.removeEventListener("abort", wake);
      resolve();
    };
    builderWatchers.add(wake);
    signal.addEventListener("abort", wake, { once: true });
  });
/** Until `n` connections wait on the builder (bounded by the test's timeout, not a timed assertion). */
const watching = async (n: number) => {
  while (builderWatchers.size < n) await Bun.sleep(1);
};
const ORG = "org_a";
const PRJ = "prj_a";
const token: Actor = { kind: "project-token", tokenId: "tok_1", orgId: ORG, projectId: PRJ };
const other: Actor = { kind: "project-token", tokenId: "tok_2", orgId: "org_b", projectId: "prj_b" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-builds-"));
  db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  for (const [o, p] of [
    [ORG, PRJ],
    ["org_b", "prj_b"],
  ] as [string, string][]) {
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)").run(
      o,
      o.replace("_", "-"),
      o,
      new Date().toISOString(),
    );
    db.query(
      "INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'p', 600, ?)",
    ).run(p, o, new Date().toISOString());
  }
  const pki = pkiServiceFactory({
    db,
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    applianceId: "test",
  });
  await pki.ensureHierarchy(["server", "build-client"]);
  builds = buildsServiceFactory({
    db,
    projects: projectsServiceFactory({
      db,
      audit: auditServiceFactory({ db }),
      orgs: orgsServiceFactory({ db, audit: auditServiceFactory({ db }) }),
    }),
    tokens: tokensServiceFactory({ db, audit: auditServiceFactory({ db }) }),
    pki,
    builders: {
      request: async (ref, holder) => {
        if (builderGate) await builderGate;
        asks++;
        held.add(holder);
        if (builderState === "failed")
          return { state: "failed", error: "the builder image slipway/builder-dockerd:trixie is missing" };
        return builderState === "ready"
          ? {
              state: "ready",
              builder: {
                builderId: `b-${ref.platform}`,
                projectId: ref.projectId,
                platform: ref.platform,
                runtime: "dockerd",
                socketPath: `/run/${ref.platform}.sock`,
                emulated: false,
              },
            }
          : { state: "starting" };
      },
      release: (h) => (released.push(h), held.delete(h)),
      ready: (ref) =>
        builderState === "ready"
          ? { socketPath: `/run/${ref.platform.replace("/", "-")}.sock`, runtime: "dockerd", platform: ref.platform }
          : null,
      whenChanged: fakeWhenChanged,
    },
    router: { buildEnded: (id) => ended.push(id) },
    audit: auditServiceFactory({ db }),
    log: silentLogger,
    publicUrl: "https://slipway.test:8443",
    buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
    healthTimeoutMs: 60_000,
    logMaxBytes: 64,
    cancelGraceMs: 15_000,
    now: () => new Date(clock),
  });
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("builds", () => {
  test("a project is named by id or as ORG/NAME; a missing or foreign one answers the same 404, for an administrator too", () => {
    const admin: Actor = {
      kind: "user",
      userId: "usr_admin",
      username: "admin",
      isAdmin: true,
      tokenId: null,
      memberships: {},
    };
    const byName = builds.create(token, "org-a/p", []).build;
    const byAdmin = builds.create(admin, "org-b/p", []).build;
    expect([byName.project_id, byAdmin.project_id]).toEqual([PRJ, "prj_b"]);
    builds.finish(token, byName.id, { kind: "canceled" }); // (the sweep test counts running builds)
    builds.finish(admin, byAdmin.id, { kind: "canceled" });
    const refusal = (actor: Actor, ref: string) => {
      try {
        builds.create(actor, ref, []);
      } catch (e) {
        return { type: (e as Error).constructor.name, message: (e as Error).message };
      }
      throw new Error(`${ref} was accepted`);
    };
    const missing = refusal(token, "prj_nope");
    expect(missing).toEqual({ type: "NotFoundError", message: "no such project" });
    expect(refusal(token, "prj_b")).toEqual(missing); // another tenant's id
    expect(refusal(token, "org-b/p")).toEqual(missing); // another tenant's ORG/NAME
    expect(refusal(token, "org-a/nope")).toEqual(missing);
    expect(refusal(token, "nope/p")).toEqual(missing);
    expect(refusal(admin, "org-a/nope")).toEqual(missing);
    expect(refusal(admin, "prj_nope")).toEqual(missing);
  });

  test("multi-platform: one build id, one certificate and one route per platform", async () => {
    builderState = "starting";
    const { build, token: bt } = builds.create(token, PRJ, [
      { tags: ["app:1"], outputs: [], push: false, load: false },
    ]);
    expect(bt).toMatch(/^slw_b_/);
    expect(await builds.connection(token, build.id, "linux/amd64")).toEqual({ kind: "pending", waitMs: 1000 });
    builderState = "ready";
    const amd = await builds.connection(token, build.id, "linux/amd64");
    const arm = await builds.connection(token, build.id, "arm64");
    if (amd.kind !== "active" || arm.kind !== "active") throw new Error("expected active connections");
    expect(amd.serial).not.toBe(arm.serial);
    expect(amd.certPem).toContain("BEGIN CERTIFICATE");
    expect(amd.endpoint).toBe("tcp://slipway.test:8444");
    expect(builds.route(amd.serial)).toMatchObject({
      buildId: build.id,
      platform: "linux/amd64",
      socketPath: "/run/linux-amd64.sock",
    });
    expect(builds.route(arm.serial)).toMatchObject({
      buildId: build.id,
      platform: "linux/arm64",
      socketPath: "/run/linux-arm64.sock",
    });
    const row = builds.get(build.id);
    expect(row.status).toBe("running");
    expect(JSON.parse(row.platforms).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    // Finishing ends it once: the router is told, the builders released, the routes refused.
    builds.finish(token, build.id, { kind: "success" });
    builds.finish(token, build.id, { kind: "error", error: "late" }); // idempotent: stays finished
    expect(builds.get(build.id).status).toBe("finished");
    expect(ended.filter((x) => x === build.id)).toHaveLength(1);
    expect(released).toContain(build.id);
    expect(builds.route(amd.serial)).toBeNull();
    await expect(builds.connection(token, build.id, "linux/amd64")).rejects.toThrow(PreconditionError);
  });

  test("health: cancels_at after a cancel; expiry without health; the hard timeout; other tenants see nothing", async () => {
    builderState = "ready";
    const a = builds.create(token, PRJ, []).build;
    const b = builds.create(token, PRJ, []).build;
    const c = builds.create(token, PRJ, []).build;
    const conn = await builds.connection(token, a.id, "linux/amd64");
    if (conn.kind !== "active") throw new Error("expected an active connection");
    expect(builds.route(conn.serial)).not.toBeNull();
    expect(builds.health(token, a.id).cancelsAt).toBeNull();
    expect(() => builds.cancel(other, a.id)).toThrow(NotFoundError);
    builds.cancel(token, a.id);
    expect(builds.health(token, a.id).cancelsAt).not.toBeNull();
    expect(builds.route(conn.serial)).toBeNull(); // cancelled: no new connection to its builder
    clock += 20_000; // past the cancel grace; b and c are still within the health timeout
    builds.health(token, c.id);
    expect(builds.sweep()).toEqual([a.id]);
    expect(builds.get(a.id).status).toBe("canceled");
    clock += 50_000; // b: 70 s without health; c: 50 s
    expect(builds.sweep()).toEqual([b.id]);
    expect(builds.get(b.id).error).toContain("no health report");
    for (let i = 0; i < 12; i++) (clock += 50_000), builds.health(token, c.id); // 600 s timeout: reported as cancels_at first
    expect(builds.health(token, c.id).cancelsAt?.toISOString()).toBe(builds.get(c.id).deadline_at);
    clock += 30_000;
    builds.health(token, c.id);
    expect(builds.sweep()).toEqual([c.id]);
    expect(builds.get(c.id).error).toContain("timeout");
  });

  test("status reports: steps upserted by digest, logs capped per build", () => {
    const { build } = builds.create(token, PRJ, []);
    const step = {
      digest: "sha256:1",
      name: "RUN x",
      cached: false,
      started: new Date(clock),
      completed: null,
      error: "",
    };
    builds.report(token, build.id, {
      steps: [step],
      logs: [{ vertex: "sha256:1", stream: 1, at: null, data: new TextEncoder().encode("a".repeat(40)) }],
    });
    builds.report(token, build.id, {
      steps: [{ ...step, completed: new Date(clock + 5), cached: true }],
      logs: [{ vertex: "sha256:1", stream: 1, at: null, data: new TextEncoder().encode("b".repeat(40)) }],
    });
    const steps = builds.steps(token, build.id);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ name: "RUN x", cached: 1 });
    expect(steps[0]!.completed_at).not.toBeNull();
    const logs = builds.logs(token, build.id);
    expect(logs.text).toBe("a".repeat(40) + "b".repeat(24));
    expect(logs.truncated).toBe(true);
    expect(() => builds.logs(other, build.id)).toThrow(NotFoundError);
  });

  test("a build token's steps and logs are refused once its build finished or was canceled; nothing is written", () => {
    for (const ending of [{ kind: "success" }, { kind: "canceled" }] as const) {
      const { build } = builds.create(token, PRJ, []);
      const buildToken: Actor = {
        kind: "build-token",
        tokenId: "tok_b",
        orgId: ORG,
        projectId: PRJ,
        buildId: build.id,
      };
      const batch = (text: string) => ({
        steps: [
          {
            digest: `sha256:${text}`,
            name: `RUN ${text}`,
            cached: false,
            started: new Date(clock),
            completed: null,
            error: "",
          },
        ],
        logs: [{ vertex: `sha256:${text}`, stream: 1, at: null, data: new TextEncoder().encode(text) }],
      });
      builds.report(buildToken, build.id, batch("during"));
      builds.finish(buildToken, build.id, ending);
      expect(() => builds.report(buildToken, build.id, batch("after"))).toThrow(PreconditionError);
      expect(() => builds.report(buildToken, build.id, batch("after"))).toThrow(
        /is (finished|canceled): it takes no more steps or logs/,
      );
      expect(builds.steps(buildToken, build.id).map((s) => s.name)).toEqual(["RUN during"]);
      expect(builds.logs(buildToken, build.id).text).toBe("during");
    }
  });
});

describe("draining (serve stopping)", () => {
  test("CreateBuild is refused as unavailable, after the 401 and the foreign-project 404; live builds are in flight; the rest are canceled with the reason FinishBuild then answers", () => {
    clock += 120_000; // what earlier tests left active is long silent
    // Its own service on the same database: a drain is one-way.
    const drained = buildsServiceFactory({
      db,
      projects: projectsServiceFactory({
        db,
        audit: auditServiceFactory({ db }),
        orgs: orgsServiceFactory({ db, audit: auditServiceFactory({ db }) }),
      }),
      tokens: tokensServiceFactory({ db, audit: auditServiceFactory({ db }) }),
      pki: { issueBuildClientCertificate: () => Promise.reject(new Error("unused")), trustedRootsPem: () => "" },
      builders: { request: async () => ({ state: "starting" }), release: () => {}, ready: () => null },
      router: { buildEnded: (id) => ended.push(id) },
      audit: auditServiceFactory({ db }),
      log: silentLogger,
      publicUrl: "https://slipway.test:8443",
      buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
      healthTimeoutMs: 60_000,
      logMaxBytes: 64,
      now: () => new Date(clock),
    });
    const live = drained.create(token, PRJ, []).build;
    const silent = drained.create(token, PRJ, []).build;
    clock += 10_000;
    const fresh = drained.create(token, PRJ, []).build;
    expect(drained.inFlight(60_000).sort()).toEqual([live.id, silent.id, fresh.id].sort()); // new: its first health report is due
    clock += 10_000;
    drained.health(token, live.id);
    expect(drained.inFlight(60_000).sort()).toEqual([live.id, fresh.id].sort()); // silent: 20 s and never heard from
    clock += 30_000;
    expect(drained.inFlight(60_000)).toEqual([live.id]);
    expect(drained.inFlight(20_000)).toEqual([]); // heard from 30 s ago
    drained.health(token, live.id);

    drained.stopAdmitting("shutting down: no new builds");
    expect(() => drained.create({ kind: "anonymous" }, PRJ, [])).toThrow(/authentication|credential|token/i);
    expect(() => drained.create(token, "prj_b", [])).toThrow(NotFoundError);
    expect(() => drained.create(token, PRJ, [])).toThrow(new UnavailableError("shutting down: no new builds"));
    // Builds admitted before the drain go on.
    expect(drained.health(token, live.id).cancelsAt).toBeNull();

    const canceled = drained.cancelForShutdown("shutting down: out of drain time");
    expect(canceled).toEqual(expect.arrayContaining([live.id, silent.id, fresh.id]));
    expect(ended).toEqual(expect.arrayContaining([live.id, silent.id, fresh.id])); // their connections close
    expect(drained.get(live.id)).toMatchObject({ status: "canceled", error: "shutting down: out of drain time" });
    expect(drained.untoldShutdownCancels()).toEqual(expect.arrayContaining([live.id, silent.id]));
    // The client's FinishBuild (whatever it reports) is answered with the reason, every time.
    for (let i = 0; i < 2; i++)
      expect(() => drained.finish(token, live.id, { kind: "error", error: "EOF" })).toThrow(
        new UnavailableError("shutting down: out of drain time"),
      );
    expect(drained.untoldShutdownCancels()).not.toContain(live.id);
    expect(drained.get(live.id).status).toBe("canceled");
    expect(() => drained.finish(other, live.id, { kind: "success" })).toThrow(NotFoundError); // still nothing for other tenants
    expect(drained.cancelForShutdown("again")).toEqual([]); // nothing active is left
  });
});

describe("builds: connections, cancels and ends that cross", () => {
  const certificates = (id: string) =>
    (db.query("SELECT count(*) AS n FROM build_certificates WHERE build_id = ?").get(id) as { n: number }).n;

  test("route() answers null for an unknown serial, a builder not ready, a canceled build and an ended one", async () => {
    builderState = "ready";
    const a = builds.create(token, PRJ, []).build;
    const b = builds.create(token, PRJ, []).build;
    const ca = await builds.connection(token, a.id, "linux/amd64");
    const cb = await builds.connection(token, b.id, "linux/amd64");
    if (ca.kind !== "active" || cb.kind !== "active") throw new Error("expected active connections");
    expect(builds.route(ca.serial)).toMatchObject({ buildId: a.id, projectId: PRJ, platform: "linux/amd64" });
    expect(builds.route("0123456789abcdef")).toBeNull();
    builderState = "starting"; // the builder went away and is coming back
    expect(builds.route(ca.serial)).toBeNull();
    builderState = "ready";
    expect(builds.route(ca.serial)).not.toBeNull();
    builds.cancel(token, a.id);
    expect(builds.route(ca.serial)).toBeNull(); // canceled, not yet ended: still no new connection
    expect(builds.get(a.id).status).toBe("running");
    builds.finish(token, b.id, { kind: "success" });
    expect(builds.route(cb.serial)).toBeNull();
    builds.finish(token, a.id, { kind: "canceled" });
    expect(builds.route(ca.serial)).toBeNull();
  });

  test("a builder that failed to start: failed_precondition with its error; no certificate, the build still waits for a builder", async () => {
    builderState = "failed";
    const { build } = builds.create(token, PRJ, []);
    await expect(builds.connection(token, build.id, "linux/amd64")).rejects.toThrow(
      new PreconditionError(
        "the builder for linux/amd64 could not start: the builder image slipway/builder-dockerd:trixie is missing",
      ),
    );
    expect(certificates(build.id)).toBe(0);
    expect(builds.get(build.id)).toMatchObject({ status: "created", started_at: null });
    builderState = "ready"; // the next ask tries again
    expect((await builds.connection(token, build.id, "linux/amd64")).kind).toBe("active");
    builds.finish(token, build.id, { kind: "success" });
    expect(held.has(build.id)).toBe(false);
  });

  test("a build that ended while its builder was asked for gets no certificate, stays ended and holds no builder", async () => {
    for (const [ending, state] of [
      ["finish", "ready"],
      ["sweep", "ready"],
      ["builder lost", "ready"],
      ["finish", "starting"],
    ] as const) {
      builderState = state;
      const { build } = builds.create(token, PRJ, []);
      let open!: () => void;
      builderGate = new Promise<void>((resolve) => (open = resolve));
      const asked = builds.connection(token, build.id, "linux/amd64");
      if (ending === "finish") builds.finish(token, build.id, { kind: "canceled" });
      else if (ending === "builder lost") builds.builderLost([build.id], "container exited");
      else {
        clock += 61_000; // no health report since it was created
        expect(builds.sweep()).toContain(build.id);
      }
      open();
      builderGate = null;
      await expect(asked).rejects.toThrow(new PreconditionError(`build ${build.id} ended`));
      expect(certificates(build.id)).toBe(0);
      expect(builds.get(build.id).status).toBe(
        ending === "finish" ? "canceled" : ending === "sweep" ? "expired" : "failed",
      );
      expect(held.has(build.id)).toBe(false); // else its builder would never go idle
    }
  });

  test("cancel of an ended build is a conflict and changes nothing; a cancel is idempotent while it runs", () => {
    const { build } = builds.create(token, PRJ, []);
    builds.finish(token, build.id, { kind: "success" });
    const before = builds.get(build.id);
    expect(() => builds.cancel(token, build.id)).toThrow(new ConflictError(`build ${build.id} already finished`));
    expect(builds.get(build.id)).toEqual(before);
    expect(() => builds.cancel(other, build.id)).toThrow(NotFoundError); // another tenant: missing, not a conflict
    const running = builds.create(token, PRJ, []).build;
    const first = builds.cancel(token, running.id);
    clock += 1000;
    const second = builds.cancel(token, running.id);
    expect(second.cancel_requested_at).toBe(first.cancel_requested_at);
    builds.finish(token, running.id, { kind: "canceled" });
  });

  test("a client that finishes with an error after a cancel ends the build canceled, keeping its error; success still wins", () => {
    const a = builds.create(token, PRJ, []).build;
    builds.cancel(token, a.id);
    const result = builds.finish(token, a.id, { kind: "error", error: "context canceled" });
    expect(result).toMatchObject({ status: "canceled", error: "context canceled" });
    expect(builds.finish(token, a.id, { kind: "success" }).status).toBe("canceled"); // ended: a late retry changes nothing
    const b = builds.create(token, PRJ, []).build;
    builds.cancel(token, b.id);
    expect(builds.finish(token, b.id, { kind: "success" }).status).toBe("finished"); // it completed before it could stop
    expect(result.finished_at).not.toBeNull();
  });

  test("a lost builder fails its active builds, closes their connections and releases them; ended builds keep their status", async () => {
    builderState = "ready";
    const live = builds.create(token, PRJ, []).build;
    const done = builds.create(token, PRJ, []).build;
    const conn = await builds.connection(token, live.id, "linux/amd64");
    if (conn.kind !== "active") throw new Error("expected an active connection");
    builds.finish(token, done.id, { kind: "success" });
    ended.length = 0;
    released.length = 0;
    builds.builderLost([live.id, done.id, "bld_missing"], "the container exited (137)");
    expect(builds.get(live.id)).toMatchObject({ status: "failed", error: "builder lost: the container exited (137)" });
    expect(builds.get(done.id)).toMatchObject({ status: "finished", error: null });
    expect(ended).toEqual([live.id]);
    expect(released).toEqual([live.id]);
    expect(builds.route(conn.serial)).toBeNull();
    expect(() => builds.report(token, live.id, { steps: [], logs: [] })).toThrow(
      /is failed: it takes no more steps or logs/,
    );
    builds.builderLost([live.id], "again"); // once only
    expect(builds.get(live.id).error).toBe("builder lost: the container exited (137)");
    expect(ended).toEqual([live.id]);
  });
});

describe("builds: a connection held open while its builder starts", () => {
  const HOLD = { ms: 600_000 }; // longer than any test: only the events below end a hold

  test("one call answers active once the builder is ready; it asks the builder again only when woken", async () => {
    builderState = "starting";
    const { build } = builds.create(token, PRJ, []);
    const before = asks;
    const asked = builds.connection(token, build.id, "linux/amd64", HOLD);
    await watching(1);
    builderChanged(); // something changed, but the builder still starts: the call holds on
    await watching(1);
    expect(asks - before).toBe(2);
    builderState = "ready";
    builderChanged();
    const conn = await asked;
    expect(conn.kind).toBe("active");
    expect(asks - before).toBe(3);
    expect(builds.get(build.id).status).toBe("running");
    expect(builds.heldCount()).toBe(0);
    builds.finish(token, build.id, { kind: "success" });
  });

  test("a builder that fails during the hold: failed_precondition with its error at once", async () => {
    builderState = "starting";
    const { build } = builds.create(token, PRJ, []);
    const asked = builds.connection(token, build.id, "linux/amd64", HOLD);
    await watching(1);
    builderState = "failed";
    builderChanged();
    await expect(asked).rejects.toThrow(/could not start: the builder image .* is missing/);
    expect(builds.heldCount()).toBe(0);
    builds.finish(token, build.id, { kind: "error", error: "no builder" });
  });

  test("the client leaving ends the hold: nothing is left waiting and no certificate is made", async () => {
    builderState = "starting";
    const { build } = builds.create(token, PRJ, []);
    const gone = new AbortController();
    const asked = builds.connection(token, build.id, "linux/amd64", { ...HOLD, signal: gone.signal });
    await watching(1);
    gone.abort();
    expect(await asked).toEqual({ kind: "pending", waitMs: 20 });
    expect(builderWatchers.size).toBe(0);
    expect(builds.heldCount()).toBe(0);
    expect(builds.get(build.id).status).toBe("created");
    builds.finish(token, build.id, { kind: "canceled" });
  });

  test("a hold that runs out answers pending with a short wait; an unheld call answers as before", async () => {
    builderState = "starting";
    const { build } = builds.create(token, PRJ, []);
    expect(await builds.connection(token, build.id, "linux/amd64", { ms: 1 })).toEqual({ kind: "pending", waitMs: 20 });
    expect(await builds.connection(token, build.id, "linux/amd64")).toEqual({ kind: "pending", waitMs: 1000 });
    expect(builderWatchers.size).toBe(0);
    builds.finish(token, build.id, { kind: "canceled" });
  });

  test("a cancel or an end during the hold answers at once; the ended build holds no builder", async () => {
    builderState = "starting";
    const canceled = builds.create(token, PRJ, []).build;
    const finished = builds.create(token, PRJ, []).build;
    const a = builds.connection(token, canceled.id, "linux/amd64", HOLD);
    const b = builds.connection(token, finished.id, "linux/amd64", HOLD);
    await watching(2);
    builds.cancel(token, canceled.id);
    await expect(a).rejects.toThrow(new PreconditionError(`build ${canceled.id} was canceled`));
    builds.finish(token, finished.id, { kind: "error", error: "the client gave up" });
    await expect(b).rejects.toThrow(new PreconditionError(`build ${finished.id} is failed; it can no longer connect`));
    expect(held.has(finished.id)).toBe(false);
    expect(builderWatchers.size).toBe(0);
    expect(builds.heldCount()).toBe(0);
    builds.finish(token, canceled.id, { kind: "canceled" });
  });

  test("a drain answers held calls at once, and holds no new one", async () => {
    // Its own service on the same database: a drain is one-way.
    const draining = buildsServiceFactory({
      db,
      projects: projectsServiceFactory({
        db,
        audit: auditServiceFactory({ db }),
        orgs: orgsServiceFactory({ db, audit: auditServiceFactory({ db }) }),
      }),
      tokens: tokensServiceFactory({ db, audit: auditServiceFactory({ db }) }),
      pki: { issueBuildClientCertificate: () => Promise.reject(new Error("unused")), trustedRootsPem: () => "" },
      builders: {
        request: async () => ({ state: "starting" }),
        release: () => {},
        ready: () => null,
        whenChanged: fakeWhenChanged,
      },
      router: { buildEnded: () => {} },
      audit: auditServiceFactory({ db }),
      log: silentLogger,
      publicUrl: "https://slipway.test:8443",
      buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
      healthTimeoutMs: 60_000,
      logMaxBytes: 64,
      now: () => new Date(clock),
    });
    const { build } = draining.create(token, PRJ, []);
    const asked = draining.connection(token, build.id, "linux/amd64", HOLD);
    await watching(1);
    draining.stopAdmitting("stopping");
    expect(await asked).toEqual({ kind: "pending", waitMs: 1000 });
    expect(await draining.connection(token, build.id, "linux/amd64", HOLD)).toEqual({ kind: "pending", waitMs: 1000 });
    expect(builderWatchers.size).toBe(0);
    expect(draining.heldCount()).toBe(0);
    draining.finish(token, build.id, { kind: "canceled" });
  });
});

describe("builds: list paging", () => {
  const LIST = "prj_list";
  const lister: Actor = { kind: "project-token", tokenId: "tok_3", orgId: ORG, projectId: LIST };
  const made: string[] = [];

  beforeAll(() => {
    db.query(
      "INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'list', 600, ?)",
    ).run(LIST, ORG, new Date().toISOString());
    // Several builds share a creation time: the order and the cursor must break ties by id.
    for (let i = 0; i < 7; i++) {
      if (i === 2 || i === 5) clock += 1000;
      made.push(builds.create(lister, LIST, []).build.id);
    }
  });
  const newestFirst = () =>
    made
      .map((id) => builds.get(id))
      .sort((x, y) => (x.created_at === y.created_at ? (x.id < y.id ? 1 : -1) : x.created_at < y.created_at ? 1 : -1))
      .map((b) => b.id);

  test("pages of every size walk every build once, newest first, ties broken by id; the last page has no cursor", () => {
    for (const size of [1, 2, 3, 6, 7, 8]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { builds: { id: string }[]; next: string | null } = builds.list(lister, LIST, size, cursor);
        expect(page.builds.length).toBeLessThanOrEqual(size);
        expect(page.builds.length).toBeGreaterThan(0); // never an empty page behind a cursor
        seen.push(...page.builds.map((b) => b.id));
        cursor = page.next;
        pages++;
      } while (cursor);
      expect({ size, seen }).toEqual({ size, seen: newestFirst() });
      expect(pages).toBe(Math.ceil(7 / size));
    }
  });

  test("a page size of zero or none is 50, a negative one is 1, a huge one is capped at 200", () => {
    expect(builds.list(lister, LIST, 0, null)).toMatchObject({ next: null });
    expect(builds.list(lister, LIST, 0, null).builds).toHaveLength(7);
    expect(builds.list(lister, LIST, Number.NaN, null).builds).toHaveLength(7);
    expect(builds.list(lister, LIST, -3, null).builds).toHaveLength(1);
    expect(builds.list(lister, LIST, 2.9, null).builds).toHaveLength(2);
    for (let i = 0; i < 200; i++) made.push(builds.create(lister, LIST, []).build.id);
    const page = builds.list(lister, LIST, 1_000_000, null);
    expect(page.builds).toHaveLength(200);
    expect(page.next).not.toBeNull();
    expect(builds.list(lister, LIST, 1_000_000, page.next).builds.map((b) => b.id)).toEqual(newestFirst().slice(200));
  });

  test("a page token this server did not give is invalid input, not an internal error", () => {
    for (const bad of ["garbage", "|", "2026-11-22T10:00:00.000Z|", "|bld_x", "a|b|c"]) {
      expect(() => builds.list(lister, LIST, 10, bad)).toThrow(InvalidInputError);
    }
  });

  test("another tenant's project lists like a missing one", () => {
    const refusal = (projectId: string) => {
      try {
        builds.list(other, projectId, 10, null);
      } catch (e) {
        return [(e as Error).constructor.name, (e as Error).message];
      }
      return null;
    };
    expect(refusal(LIST)).toEqual(["NotFoundError", "no such project"]);
    expect(refusal("prj_missing")).toEqual(refusal(LIST));
  });
});

describe("builds: the last builds of each project (a projects list's health strip)", () => {
  const STRIP = "prj_strip";
  const orgToken: Actor = { kind: "org-token", tokenId: "tok_4", orgId: ORG };
  const made: string[] = [];

  beforeAll(() => {
    db.query(
      "INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'strip', 600, ?)",
    ).run(STRIP, ORG, new Date().toISOString());
    for (let i = 0; i < 12; i++) {
      clock += 1000;
      made.push(builds.create(orgToken, STRIP, []).build.id);
    }
    builds.finish(orgToken, made.at(-1)!, { kind: "error", error: "exit code 1" });
  });

  test("the newest n of each project with their status, newest first; a project without builds has none", () => {
    const recent = builds.recentOf(
      orgToken,
      [
        { id: STRIP, org_id: ORG },
        { id: "prj_empty", org_id: ORG },
      ],
      10,
    );
    const strip = recent.get(STRIP)!;
    expect(strip.map((b) => b.id)).toEqual(made.slice(-10).reverse());
    expect(strip[0]).toEqual({ id: made.at(-1)!, status: "failed", created_at: builds.get(made.at(-1)!).created_at });
    expect(strip.slice(1).every((b) => b.status === "created")).toBe(true);
    expect(recent.get("prj_empty")).toEqual([]);
  });

  test("another tenant's project is refused like a missing one", () => {
    expect(() => builds.recentOf(other, [{ id: STRIP, org_id: ORG }], 10)).toThrow(NotFoundError);
  });
});
