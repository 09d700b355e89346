/**
 * @module test/e2e/builder-upgrade
 * A builder whose configured image changed is recreated on the new one, with the real engine and
 * the real dockerd builder image: the configured reference is a tag of image A, then moved to B
 * (A committed with another label, so the id differs and nothing is pulled). A build in progress
 * keeps its builder; once released, the builder is recreated on B with its cache volume (a marker
 * file and BuildKit's cache survive); doctor and the /readyz check say so before and not after.
 * Then serve restarts while the reference moves again: the adopted builder is recreated when idle,
 * and /readyz and the project's builders API show it current; a changed runtime setting
 * (insecure_registries) recreates it on the same image; and through serve, a depot CLI build runs
 * across a move while /readyz and the API say outdated, and the builder is recreated after it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  builderCurrencyHealthCheck,
  builderServiceFactory,
  BUILDER_LABELS,
  type BuilderService,
  type ReadyBuilder,
} from "../../src/builders/index.ts";
import { openDatabase } from "../../src/db/index.ts";
import { run, which } from "../../src/host/run.ts";
import { newId } from "../../src/ids.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { plainVolumeManager } from "../../src/volumes/index.ts";
import { slipwayBinary } from "../support/binary.ts";
import { builderTableDeps } from "../support/builder-deps.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { DEPOT, depotEnv, waitFor as waitForCondition } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway, serve, type Served } from "../support/serve.ts";

const missing =
  (await builderImageMissing()) ??
  (which("busybox") ? null : "busybox-static is not installed (the slow build step runs it)") ??
  (existsSync(DEPOT) ? null : `the depot CLI is not installed (${DEPOT}; npm installs it on linux-x64)`);

integrationSuite("builder image upgrades on the local Docker engine", missing, () => {
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const work = mkdtempSync(join(tmpdir(), "slipway-upgrade-"));
  const dataDir = join(work, "data");
  const unique = newId("u").slice(-10).toLowerCase();
  /** The configured builder image: a tag the test moves between A and B. */
  const ref = `slipway/builder-dockerd:upgrade-${unique}`;
  let imageA = "";
  let imageB = "";
  let bin = "";
  let serveArgs: string[] = [];
  let db: ReturnType<typeof openDatabase>;
  let applianceId = "";
  let projectId = "";
  let admin = "";
  let native = "linux/amd64";
  let m: BuilderService | null = null;
  let s: Served | null = null;

  const manager = () =>
    builderServiceFactory({
      db,
      ...builderTableDeps(db),
      docker,
      volumes: plainVolumeManager({ root: join(dataDir, "volumes", "plain") }), // where serve keeps them with encryption = "none"
      applianceId,
      dataDir,
      runtime: "dockerd",
      image: ref,
      containerdStore: true, // as serve, on its defaults (doctor compares with them)
      log: silentLogger,
      idleTimeoutMs: () => 600_000,
      readyTimeoutMs: 120_000,
      imageRefreshMs: 3_600_000, // only the engine's image events can notice the move in time
    });
  const ours = async () =>
    (await docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${applianceId}`] }),
    })) as { Id: string; ImageID: string; Names: string[] }[];
  const tag = async (imageId: string) => {
    const r = await run(["docker", "tag", imageId, ref]);
    expect(r.code, r.stderr).toBe(0);
  };
  const waitFor = <T>(
    what: string,
    probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
    ms = 180_000,
  ): Promise<T> => waitForCondition(what, probe, ms);
  /** The RUN step `command` is running in the builder `containerId` (its process is in the builder's pid namespace). */
  const stepRunning = async (containerId: string, command: string) => {
    const r = await run([
      "docker",
      "exec",
      containerId,
      "sh",
      "-c",
      'for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done',
    ]);
    return r.stdout.split("\n").some((line) => line.trim() === command);
  };
  const marker = async (containerId: string) =>
    (await run(["docker", "exec", containerId, "cat", "/var/lib/docker/slipway-upgrade-marker"])).stdout.trim();
  const doctor = async () => {
    const r = await runSlipway(bin, ["doctor", "--json", "--data-dir", dataDir, ...serveArgs]);
    return (JSON.parse(r.stdout).findings as { check: string; status: string; message: string }[]).filter(
      (f) => f.check === "builders-image-current",
    );
  };

  /** A context whose RUN step takes `seconds` (a static busybox in a scratch image: nothing pulled). */
  const buildContext = (name: string, seconds: number) => {
    const ctx = join(work, `ctx-${name}`);
    writeBusyboxContext(ctx, `RUN sleep ${seconds} && echo ${name} > /done`);
    return ctx;
  };
  const dockerBuild = async (b: ReadyBuilder, ctx: string) => {
    const r = await run(["/usr/bin/docker", "build", "--progress=plain", ctx], {
      env: { DOCKER_HOST: `unix://${b.socketPath}`, DOCKER_BUILDKIT: "1" },
      timeoutMs: 240_000,
    });
    return { ...r, log: r.stdout + r.stderr };
  };

  beforeAll(async () => {
    imageA = (await ensureDockerdBuilderImage()).id;
    native =
      ((await docker.info()) as { Architecture: string }).Architecture === "aarch64" ? "linux/arm64" : "linux/amd64";
    // B: A with one more label, so another id, made here without pulling anything.
    const scratch = await docker.createContainer({ Image: imageA }); // never started; commit keeps A's entrypoint
    const committed = await run([
      "docker",
      "commit",
      "--change",
      `LABEL io.slipway.test.upgrade=${unique}`,
      scratch.id,
    ]);
    await scratch.remove({ force: true, v: true }); // with the anonymous volume of the image's VOLUME
    expect(committed.code, committed.stderr).toBe(0);
    imageB = committed.stdout.trim();
    expect(imageB).not.toBe(imageA);
    await tag(imageA);

    bin = slipwayBinary();
    // The builder network policy off: this test's own manager stands in for an earlier serve and
    // makes networks without the policy's bridge names, which a serve enforcing it does not adopt
    // (that refusal is tested in builder-network-policy.test.ts).
    serveArgs = [
      "--set",
      `builders.dockerd_image=${ref}`,
      "--set",
      "volumes.encryption=none",
      "--set",
      "builders.network_policy=off",
    ];
    // A first serve makes the appliance (database, identity) and a project, then stops.
    const first = await serve(bin, dataDir, serveArgs);
    admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const created = await first.get("/api/v1/orgs/default/projects", {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "upgraded" }),
    });
    expect(created.status).toBe(201);
    projectId = ((await created.json()) as { id: string }).id;
    await first.stop();
    db = openDatabase(join(dataDir, "slipway.db"));
    applianceId = (db.query("SELECT id FROM appliance").get() as { id: string }).id;
  }, 20 * 60_000);

  afterAll(async () => {
    m?.close();
    await s?.stop();
    for (const c of await ours())
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => {});
    const nets = (await docker.listNetworks({
      filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${applianceId}`] }),
    })) as { Id: string }[];
    for (const n of nets)
      await docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => {});
    await run(["docker", "rmi", ref]); // the tag only: image A is shared with other tests
    await run(["docker", "rmi", imageB]);
    db?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test("a held builder keeps its image while the reference moves; released, it is recreated on the new one with its cache", async () => {
    const r = { projectId, platform: native };
    m = manager();
    await m.watch();
    const b = await m.acquire(r, "build-1");
    const before = m.list(projectId)[0]!;
    expect(before.image_id).toBe(imageA);
    expect(((await docker.getContainer(before.container_id!).inspect()) as { Image: string }).Image).toBe(imageA);
    // The first build: its cache, and a marker file, land on the cache volume.
    const quick = buildContext("quick", 1);
    const first = await dockerBuild(b, quick);
    expect(first.code, first.log).toBe(0);
    expect(
      (
        await run([
          "docker",
          "exec",
          before.container_id!,
          "sh",
          "-c",
          "echo kept > /var/lib/docker/slipway-upgrade-marker",
        ])
      ).code,
    ).toBe(0);
    expect(m.outdated()).toEqual([]);
    expect(builderCurrencyHealthCheck(m).run().status).toBe("pass");

    // A build in progress (an 8 s RUN step) while the reference moves to B.
    const slow = dockerBuild(b, buildContext("slow", 8));
    await waitFor("the slow build's RUN step to run", () => stepRunning(before.container_id!, "sleep 8"), 120_000);
    const movedAt = Date.now();
    await tag(imageB);
    const old = await waitFor("the image event to mark the builder outdated", () => m!.outdated(projectId)[0], 20_000);
    expect(old).toMatchObject({
      builderId: before.id,
      platform: native,
      from: { image: ref, imageId: imageA },
      to: { image: ref, imageId: imageB },
      settingsChanged: false,
    });
    const check = builderCurrencyHealthCheck(m).run();
    expect(check.status).toBe("warn"); // a warning, not a failure
    expect(check.output).toContain(`${native}: ${ref}`);
    expect(check.output).not.toContain(projectId); // /readyz answers anyone
    const found = await doctor();
    expect(found).toHaveLength(1);
    expect(found[0]!.status).toBe("warn");
    expect(found[0]!.message).toContain(
      `project ${projectId} ${native}: ${ref} (${imageA.slice(7, 19)}) → ${ref} (${imageB.slice(7, 19)})`,
    );
    const done = await slow;
    expect(done.code, done.log).toBe(0); // not interrupted
    expect(Date.now()).toBeGreaterThan(movedAt + 3000); // it really ran across the move
    expect(done.log).toMatch(/sleep 8/);
    // Still held: the same container, on A.
    expect(m.list(projectId)[0]!.container_id).toBe(before.container_id);
    expect((await ours()).map((c) => c.ImageID)).toEqual([imageA]);

    m.release("build-1");
    const releasedAt = performance.now();
    const after = await waitFor("the builder recreated on B", () => {
      const row = m!.list(projectId)[0]!;
      // Absent for a moment between the stop and the start; absent with an error: the start failed.
      if (row.state === "absent" && row.last_error) throw new Error(`the recreated builder failed: ${row.last_error}`);
      return row.container_id && row.container_id !== before.container_id && row.state === "idle" ? row : null;
    });
    console.log(`released → recreated on B and idle: ${Math.round(performance.now() - releasedAt)} ms`);
    expect(after.id).toBe(before.id);
    expect(after.image).toBe(ref);
    expect(after.image_id).toBe(imageB);
    expect(((await docker.getContainer(after.container_id!).inspect()) as { Image: string }).Image).toBe(imageB);
    expect((await ours()).map((c) => c.Id)).toEqual([after.container_id!]); // the old one is gone
    expect(await marker(after.container_id!)).toBe("kept");
    const again = await dockerBuild(await m.acquire(r, "build-2"), quick);
    expect(again.code, again.log).toBe(0);
    expect(again.log).toMatch(/CACHED/); // BuildKit's cache survived too
    m.release("build-2");
    expect(m.outdated()).toEqual([]);
    expect(builderCurrencyHealthCheck(m).run().status).toBe("pass");
    const cleared = await doctor();
    expect(cleared.map((f) => f.status)).toEqual(["ok"]);
  }, 600_000);

  test("serve restarts while the reference moves back: the adopted builder is recreated when idle, and /readyz and the API say current", async () => {
    const before = m!.list(projectId)[0]!;
    expect(before.image_id).toBe(imageB);
    m!.close(); // serve gone; the builder keeps running
    m = null;
    await tag(imageA);
    const stale = await doctor();
    expect(stale).toHaveLength(1);
    expect(stale[0]!.status).toBe("warn");

    s = await serve(bin, dataDir, serveArgs);
    const served = s;
    const readiness = async () =>
      (
        (await (await served.get("/readyz")).json()) as {
          status: string;
          checks: Record<string, { status: string; output: string; observedValue: number }[]>;
        }
      ).checks["builders:image-current"]![0]!;
    await waitFor("the adopted builder recreated on A", async () => {
      const c = await ours();
      return c.length === 1 && c[0]!.Id !== before.container_id && c[0]!.ImageID === imageA;
    });
    const log = s.logs();
    expect(log).toMatch(/"builders reconciled".*"adopted":1/);
    expect(log).toContain("recreating an idle builder on the configured image");
    const current = await waitFor(
      "/readyz to show the builder current",
      async () => {
        const c = await readiness();
        return c.status === "pass" ? c : null;
      },
      60_000,
    );
    expect(current.observedValue).toBe(0);
    const builders = await waitFor(
      "the builder to settle",
      async () => {
        const listed = await served.get(`/api/v1/projects/${projectId}/builders`, {
          headers: { authorization: `Bearer ${admin}` },
        });
        expect(listed.status).toBe(200);
        const l = (await listed.json()) as {
          platform: string;
          state: string;
          image: string;
          image_id: string;
          image_upgrade: unknown;
        }[];
        return l[0]?.state === "idle" ? l : null;
      },
      120_000,
    );
    expect(builders).toHaveLength(1);
    expect(builders[0]).toMatchObject({ platform: native, image: ref, image_id: imageA, image_upgrade: null });
    const c = (await ours())[0]!;
    expect(await marker(c.Id)).toBe("kept"); // the same cache volume again
    expect((await doctor()).map((f) => f.status)).toEqual(["ok"]);
  }, 600_000);

  test("a runtime setting that shapes the container changed across a restart: the same image, recreated with the new settings", async () => {
    const before = (await ours())[0]!;
    const label = async (id: string) =>
      ((await docker.getContainer(id).inspect()) as { Config: { Labels: Record<string, string> } }).Config.Labels[
        BUILDER_LABELS.settings
      ];
    const oldSettings = await label(before.Id);
    await s!.stop();
    s = null;
    serveArgs = [...serveArgs, "--set", "builders.insecure_registries=127.0.0.1:5999"];
    const stale = await doctor();
    expect(stale).toHaveLength(1);
    expect(stale[0]!.status).toBe("warn");
    expect(stale[0]!.message).toContain("same image, runtime settings changed");
    s = await serve(bin, dataDir, serveArgs);
    const served = s;
    const after = await waitFor("the builder recreated with the new settings and idle", async () => {
      const l = (await (
        await served.get(`/api/v1/projects/${projectId}/builders`, { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { state: string }[];
      const c = await ours();
      return l[0]?.state === "idle" && c.length === 1 && c[0]!.Id !== before.Id ? c[0]! : null;
    });
    expect(after.ImageID).toBe(imageA);
    expect(await label(after.Id)).not.toBe(oldSettings);
    expect(await marker(after.Id)).toBe("kept");
    // dockerd inside it got the setting (its daemon.json comes from the container's environment).
    const env = ((await docker.getContainer(after.Id).inspect()) as { Config: { Env: string[] } }).Config.Env.join(
      "\n",
    );
    expect(env).toContain("127.0.0.1:5999");
    await waitFor("doctor to say current", async () => (await doctor()).every((f) => f.status === "ok"), 120_000);
  }, 600_000);

  test("through serve: a depot build runs across the move; /readyz and the builders API say outdated until it ends, then the builder is recreated", async () => {
    await s!.stop();
    s = await serve(bin, dataDir, serveArgs, {}, { publicHost: "localhost" }); // the depot CLI dials the public host
    const served = s;
    const api = async (path: string, init: RequestInit = {}) => {
      const r = await served.get(path, {
        ...init,
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      });
      expect(r.status).toBeLessThan(300);
      return r.json() as Promise<any>;
    };
    const readiness = async () =>
      (await (await served.get("/readyz")).json()) as {
        status: string;
        checks: Record<string, { status: string; output: string; observedValue: number }[]>;
      };
    const token = (
      await api("/api/v1/tokens", {
        method: "POST",
        body: JSON.stringify({ kind: "project", name: "upgrade", project: projectId }),
      })
    ).token as string;
    await waitFor(
      "the adopted builder current and idle",
      async () =>
        (await api(`/api/v1/projects/${projectId}/builders`))[0]?.state === "idle" &&
        (await readiness()).checks["builders:image-current"]![0]!.status === "pass",
    );
    const before = (await ours())[0]!;
    expect(before.ImageID).toBe(imageA);

    mkdirSync(join(work, "home"), { recursive: true });
    const build = Bun.spawn(
      [
        DEPOT,
        "build",
        "--project",
        projectId,
        "--progress",
        "plain",
        "-o",
        `type=local,dest=${join(work, "out")}`,
        buildContext("served", 10),
      ],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: depotEnv(served, join(work, "home"), token),
      },
    );
    const output = Promise.all([new Response(build.stdout).text(), new Response(build.stderr).text()]).then(
      ([o, e]) => o + e,
    );
    await waitFor(
      "the build to run",
      async () => (await api(`/api/v1/projects/${projectId}/builds?limit=1`)).builds[0]?.status === "running",
      120_000,
    );
    await waitFor("the served build's RUN step to run", () => stepRunning(before.Id, "sleep 10"), 120_000);
    await tag(imageB);
    const warned = await waitFor(
      "/readyz to warn of the old image",
      async () => {
        const c = (await readiness()).checks["builders:image-current"]![0]!;
        return c.status === "warn" ? c : null;
      },
      20_000,
    );
    const report = await readiness();
    expect(report.status).not.toBe("fail"); // a warning, not a failure
    expect(warned.observedValue).toBe(1);
    expect(warned.output).toContain(`${native}: ${ref} (${imageA.slice(7, 19)}) → ${ref} (${imageB.slice(7, 19)})`);
    expect(warned.output).not.toContain(projectId); // /readyz answers anyone: doctor names projects
    const listed = (await api(`/api/v1/projects/${projectId}/builders`))[0];
    expect(listed).toMatchObject({
      image: ref,
      image_id: imageA,
      image_upgrade: { image: ref, image_id: imageB, settings_changed: false },
    });
    expect(build.exitCode).toBeNull(); // still building, on the old container
    expect((await ours()).map((c) => c.Id)).toEqual([before.Id]);

    const code = await build.exited;
    const log = await output;
    expect(code, log).toBe(0);
    expect((await api(`/api/v1/projects/${projectId}/builds?limit=1`)).builds[0].status).toBe("finished");
    expect(readFileSync(join(work, "out", "done"), "utf8").trim()).toBe("served");
    const after = await waitFor("the builder recreated on B and idle", async () => {
      const l = (await api(`/api/v1/projects/${projectId}/builders`))[0];
      return l?.state === "idle" && l.image_id === imageB ? l : null;
    });
    expect(after.image_upgrade).toBeNull();
    const c = await ours();
    expect(c.map((x) => x.ImageID)).toEqual([imageB]);
    expect(c[0]!.Id).not.toBe(before.Id);
    expect(await marker(c[0]!.Id)).toBe("kept");
    const cleared = (await readiness()).checks["builders:image-current"]![0]!;
    expect(cleared).toMatchObject({ status: "pass", observedValue: 0 });
  }, 600_000);
});
