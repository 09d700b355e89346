/**
 * @module test/e2e/builders.test
 * The builder service against the real Docker engine and the real `dockerd` builder image
 * (assembled from Debian packages; cached between runs): start on demand, ListWorkers through the
 * socket, real builds whose cache survives a restart and not a reset, one container for 20
 * concurrent requests, per-project networks that cannot reach each other, idle stop,
 * reconciliation after a crash, limits and labels; every test on an appliance id and projects of
 * its own, so any one runs alone (`bun test -t NAME`). Then what goes wrong: request() (the
 * builds service's path) and its retry after a failed start, the engine refusing or granting
 * privileged builders (the test decides, not the host), a builder never ready, one that exits
 * first, a missing image, a network of the builder's name that is not ours, and reconciliation
 * under the other runtime.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  builderServiceFactory,
  BuilderUnavailableError,
  BUILDER_LABELS,
  FALLBACK_PROFILE,
  type BuilderService,
  type BuilderServiceDeps,
  type BuilderRef,
  type BuilderStatus,
  type ReadyBuilder,
} from "../../src/builders/index.ts";
import { listWorkersAt } from "../../src/builders/image/index.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { builderTableDeps } from "../support/builder-deps.ts";
import { PreconditionError } from "../../src/errors.ts";
import { run } from "../../src/host/run.ts";
import { newId } from "../../src/ids.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { openBuilderSocket } from "../../src/router/index.ts";
import { plainVolumeManager } from "../../src/volumes/index.ts";
import { listWorkers } from "../../src/wire/buildkit.ts";
import { builderImageMissing, ensureDockerdBuilderImage } from "../support/builder-image.ts";
import { integrationSuite } from "../support/integration.ts";

const missing = await builderImageMissing();

/** What runc answers when the engine cannot grant privileged mode (CAP_SYS_RESOURCE outside its bounding set). */
const PRIVILEGE_REFUSAL =
  "(HTTP code 500) server error - failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown";

/**
 * The real engine with its verdict on privileged containers decided by the test, so the profile a
 * builder gets does not depend on the host. `refused`: a privileged container is created for
 * real and its start answers as an engine that cannot grant it does. `granted`: the start
 * succeeds; this host's engine cannot run privileged containers, so it runs with the fallback
 * profile's grants while the manager is told it got what it asked. `asked` records each create.
 * Each arrangement is an engine of its own to the builders (its `info` ID carries `engineTag`,
 * a fresh one unless given), since they remember per engine what it refused; `version`, when
 * given, is the engine version `info` reports.
 */
function arrangedEngine(
  real: Docker,
  privileged: "refused" | "granted",
  as: { engineTag?: string; version?: string } = {},
) {
  const asked: { privileged: boolean; id: string }[] = [];
  const engineTag = as.engineTag ?? newId("eng");
  const engine = new Proxy(real, {
    get(target, prop) {
      if (prop === "info") {
        return async () => {
          const info = (await target.info()) as { ID: string; ServerVersion: string };
          return { ...info, ID: `${info.ID}+${engineTag}`, ServerVersion: as.version ?? info.ServerVersion };
        };
      }
      if (prop === "createContainer") {
        return async (opts: Docker.ContainerCreateOptions) => {
          const wants = opts.HostConfig?.Privileged === true;
          const c = await target.createContainer(
            wants && privileged === "granted"
              ? { ...opts, HostConfig: { ...opts.HostConfig, ...FALLBACK_PROFILE } }
              : opts,
          );
          asked.push({ privileged: wants, id: c.id });
          if (wants && privileged === "refused")
            c.start = (async () =>
              Promise.reject(Object.assign(new Error(PRIVILEGE_REFUSAL), { statusCode: 500 }))) as typeof c.start;
          return c;
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { engine, asked, engineTag };
}

integrationSuite("builders on the local Docker engine", missing, () => {
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const dir = mkdtempSync(join(tmpdir(), "slipway-builders-"));
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  /** Names this run's images and marks its suite-wide objects (no builder runs under it). */
  const applianceId = `test${newId("a").slice(2, 12)}`;
  let image = "";
  const idleMs = new Map<string, number>();
  let published: string[] = [];
  type Lost = Parameters<NonNullable<BuilderServiceDeps["onBuilderLost"]>>[0];
  const managers: BuilderService[] = [];
  /** Every appliance id a manager ran under, its builders removed in afterAll. */
  const appliances = new Set<string>([applianceId]);
  const images: string[] = [];
  const foreignNetworks: string[] = [];
  // This suite's builders are refused privileged mode whatever the host would say (see arrangedEngine).
  const refusing = arrangedEngine(docker, "refused");
  const manager = (o: Partial<BuilderServiceDeps> = {}) => {
    const m = builderServiceFactory({
      db,
      ...builderTableDeps(o.db ?? db),
      docker: refusing.engine,
      volumes: plainVolumeManager({ root: join(dir, "volumes") }),
      applianceId,
      dataDir: dir,
      runtime: "dockerd",
      image,
      log: silentLogger,
      idleTimeoutMs: (p) => idleMs.get(p) ?? 600_000,
      readyTimeoutMs: 120_000,
      onAddresses: (a) => (published = a),
      ...o,
    });
    appliances.add(o.applianceId ?? applianceId);
    managers.push(m);
    return m;
  };
  /**
   * A manager on an appliance id of its own: its containers and networks are its test's alone, so
   * every test stands alone (runs by itself with `bun test -t`, in any order).
   */
  const isolated = (o: Partial<BuilderServiceDeps> = {}) => {
    const id = `test${newId("a").slice(2, 12)}`;
    return { id, m: manager({ applianceId: id, ...o }) };
  };
  const project = (name: string, into = db) => {
    const org = newId("org");
    into
      .query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)")
      .run(org, `${name}-${org.slice(-6)}`, name, new Date().toISOString());
    const id = newId("prj");
    into
      .query(
        "INSERT INTO projects (id, org_id, name, builder_cpus, builder_memory_mb, created_at) VALUES (?, ?, ?, 1, 1024, ?)",
      )
      .run(id, org, name, new Date().toISOString());
    return { id, org };
  };
  const ours = async (appliance: string) =>
    (await docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${appliance}`] }),
    })) as { Id: string; State: string; Labels: Record<string, string> }[];
  const projectNetworks = async (appliance: string, projectId: string) =>
    (await docker.listNetworks({
      filters: JSON.stringify({
        label: [`${BUILDER_LABELS.appliance}=${appliance}`, `${BUILDER_LABELS.project}=${projectId}`],
      }),
    })) as { Id: string }[];
  let native = "linux/amd64";

  beforeAll(async () => {
    image = (await ensureDockerdBuilderImage()).ref;
    const info = (await docker.info()) as { Architecture: string };
    native = info.Architecture === "aarch64" ? "linux/arm64" : "linux/amd64";
  }, 20 * 60_000);

  afterAll(async () => {
    for (const x of managers) x.close();
    for (const a of appliances) {
      for (const c of await ours(a))
        await docker
          .getContainer(c.Id)
          .remove({ force: true, v: true })
          .catch(() => {});
      const nets = (await docker.listNetworks({
        filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${a}`] }),
      })) as { Id: string }[];
      for (const n of nets)
        await docker
          .getNetwork(n.Id)
          .remove()
          .catch(() => {});
    }
    for (const n of foreignNetworks)
      await docker
        .getNetwork(n)
        .remove()
        .catch(() => {});
    for (const i of images)
      await docker
        .getImage(i)
        .remove({ force: true })
        .catch(() => {});
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const buildContext = (marker: string) => {
    const ctx = join(dir, `ctx-${marker}`);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(
      join(ctx, "Dockerfile"),
      `FROM scratch\nCOPY payload.txt /payload.txt\nCOPY payload.txt /again.txt\n`,
    );
    writeFileSync(join(ctx, "payload.txt"), `payload ${marker}\n`);
    return ctx;
  };
  /** A real build on the builder through its socket, with the host's docker CLI (BuildKit mode). */
  const dockerBuild = async (b: ReadyBuilder, ctx: string) => {
    // Debian's docker.io CLI (20.10): BuildKit mode without buildx.
    const r = await run(["/usr/bin/docker", "build", "--progress=plain", ctx], {
      env: { DOCKER_HOST: `unix://${b.socketPath}`, DOCKER_BUILDKIT: "1" },
      timeoutMs: 240_000,
    });
    return { ...r, log: r.stdout + r.stderr };
  };
  /** Polls `cond` every 100 ms until it holds or `ms` pass. */
  const until = async (cond: () => boolean | Promise<boolean>, ms: number) => {
    for (const deadline = Date.now() + ms; Date.now() < deadline && !(await cond()); ) await Bun.sleep(100);
  };

  test("a builder starts for a project, answers ListWorkers on its socket, and builds; the second build is cached", async () => {
    const { m } = isolated();
    const A = project("alpha");
    const b = await m.acquire({ projectId: A.id, platform: native }, "build-1");
    expect(b.runtime).toBe("dockerd");
    const opened = await openBuilderSocket(b.socketPath, "dockerd", 5000);
    opened.socket.unshift(opened.head);
    opened.socket.resume();
    const workers = await listWorkers(opened.socket, 10_000);
    expect(workers.length).toBeGreaterThan(0);
    expect(workers[0]!.platforms).toContain(native);

    const ctx = buildContext("a");
    const first = await dockerBuild(b, ctx);
    expect(first.code, first.log).toBe(0);
    expect(first.log).not.toContain("CACHED");
    const second = await dockerBuild(b, ctx);
    expect(second.code, second.log).toBe(0);
    expect(second.log).toMatch(/CACHED/);
    m.release("build-1");
  }, 300_000);

  test("the cache survives a stop and start, and not a reset", async () => {
    const { id, m } = isolated();
    const A = project("cache");
    const ctx = buildContext("cache");
    const warm = await dockerBuild(await m.acquire({ projectId: A.id, platform: native }, "build-1"), ctx);
    expect(warm.code, warm.log).toBe(0);
    expect(warm.log).not.toContain("CACHED");
    m.release("build-1");
    await m.stop({ projectId: A.id, platform: native }, "test");
    expect((await ours(id)).filter((c) => c.Labels[BUILDER_LABELS.project] === A.id)).toHaveLength(0);
    const b = await m.acquire({ projectId: A.id, platform: native }, "build-2");
    const again = await dockerBuild(b, ctx);
    expect(again.code, again.log).toBe(0);
    expect(again.log).toMatch(/CACHED/);
    m.release("build-2");

    await m.resetCache(A.id);
    const fresh = await m.acquire({ projectId: A.id, platform: native }, "build-3");
    const cold = await dockerBuild(fresh, ctx);
    expect(cold.code, cold.log).toBe(0);
    expect(cold.log).not.toContain("CACHED");
    m.release("build-3");
  }, 300_000);

  test("20 simultaneous requests for a stopped builder create one container", async () => {
    const { id, m } = isolated();
    const A = project("stampede");
    await m.acquire({ projectId: A.id, platform: native }, "first");
    m.release("first");
    await m.stop({ projectId: A.id, platform: native }, "test");
    expect(await ours(id)).toEqual([]);
    const got = await Promise.all(
      Array.from({ length: 20 }, (_, i) => m.acquire({ projectId: A.id, platform: native }, `c-${i}`)),
    );
    expect(new Set(got.map((g) => g.builderId)).size).toBe(1);
    const containers = (await ours(id)).filter((c) => c.Labels[BUILDER_LABELS.project] === A.id);
    expect(containers).toHaveLength(1);
    for (let i = 0; i < 20; i++) m.release(`c-${i}`);
  }, 180_000);

  test("labels, limits, no published ports, only its own mounts, and the fallback profile (the engine refuses privileged)", async () => {
    const { id, m } = isolated();
    const A = project("labels");
    await m.acquire({ projectId: A.id, platform: native }, "labels-1");
    m.release("labels-1");
    const row = m.list(A.id)[0]!;
    const info = (await docker.getContainer(row.container_id!).inspect()) as any;
    expect(info.Config.Labels).toMatchObject({
      [BUILDER_LABELS.appliance]: id,
      [BUILDER_LABELS.org]: A.org,
      [BUILDER_LABELS.project]: A.id,
      [BUILDER_LABELS.platform]: native,
      [BUILDER_LABELS.runtime]: "dockerd",
      [BUILDER_LABELS.profile]: row.security_profile,
    });
    expect(info.Config.Labels[BUILDER_LABELS.image]).toMatch(/^sha256:/);
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    expect(info.HostConfig.Memory).toBe(1024 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(16_384);
    expect(info.HostConfig.PortBindings ?? {}).toEqual({});
    expect(Object.keys(info.NetworkSettings.Ports ?? {})).toEqual([]);
    expect((info.Mounts as { Source: string; Destination: string }[]).map((x) => x.Destination).sort()).toEqual([
      "/run/slipway",
      "/var/lib/docker",
    ]);
    // This suite's engine refuses privileged builders (arrangedEngine): the fallback, as the README describes it.
    expect(row.security_profile).toBe("fallback");
    expect(info.Config.Labels[BUILDER_LABELS.profile]).toBe("fallback");
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.CapAdd).toEqual(["ALL"]);
    expect(info.HostConfig.CapDrop).toEqual(["SYS_RESOURCE"]);
    expect(info.HostConfig.SecurityOpt).toContain("apparmor=unconfined");
    expect((info.HostConfig.SecurityOpt as string[]).find((o) => o.startsWith("seccomp="))).toContain(
      '"open_by_handle_at"',
    );
    expect(info.HostConfig.ReadonlyPaths).toContain("/proc/sys/kernel");
    expect(info.HostConfig.ReadonlyPaths).not.toContain("/proc/sys/net");
  }, 120_000);

  test("two projects: two containers on two networks that cannot reach each other", async () => {
    const { m } = isolated();
    const A = project("net-a");
    const B = project("net-b");
    const a = await m.acquire({ projectId: A.id, platform: native }, "net-a");
    const b = await m.acquire({ projectId: B.id, platform: native }, "net-b");
    const ra = m.list(A.id)[0]!;
    const rb = m.list(B.id)[0]!;
    expect(ra.container_id).not.toBe(rb.container_id);
    expect(ra.network_id).not.toBe(rb.network_id);
    const ib = (await docker.getContainer(rb.container_id!).inspect()) as any;
    const ipB = Object.values(ib.NetworkSettings.Networks as Record<string, { IPAddress: string }>)[0]!.IPAddress;
    // Runners' egress rules always allow builders: the manager publishes their addresses.
    expect(published).toContain(ipB);
    const netB = (await docker.getNetwork(rb.network_id!).inspect()) as any;
    expect(netB.Options["com.docker.network.bridge.enable_icc"]).toBe("false");
    // A TCP listener in B (perl is in Debian's minbase), then: the host reaches it, A does not.
    const listener = await docker.getContainer(rb.container_id!).exec({
      Cmd: [
        "perl",
        "-MIO::Socket::INET",
        "-e",
        'my $s = IO::Socket::INET->new(LocalPort => 7411, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { print $c "hi\\n"; close $c }',
      ],
      AttachStdout: false,
      AttachStderr: false,
    });
    await listener.start({ Detach: true });
    const probe = [
      "perl",
      "-MIO::Socket::INET",
      "-e",
      `exit(IO::Socket::INET->new(PeerAddr => "${ipB}:7411", Timeout => 3) ? 0 : 1)`,
    ];
    let fromHost = { code: -1 };
    await until(async () => (fromHost = await run(probe, { timeoutMs: 10_000 })).code === 0, 30_000);
    expect(fromHost.code).toBe(0); // the listener is real
    const fromA = await run(["docker", "exec", ra.container_id!, ...probe], { timeoutMs: 20_000 });
    expect(fromA.code).not.toBe(0);
    m.release("net-a");
    m.release("net-b");
    expect(a.builderId).not.toBe(b.builderId);
  }, 240_000);

  test("an organization's OCI runtime: used when the engine knows it; refused cleanly when not", async () => {
    const { id, m } = isolated();
    const C = project("gamma");
    db.query("UPDATE organizations SET builder_oci_runtime = 'runc' WHERE id = ?").run(C.org);
    await m.acquire({ projectId: C.id, platform: native }, "rt-1");
    const row = m.list(C.id)[0]!;
    expect(row.oci_runtime).toBe("runc");
    expect(((await docker.getContainer(row.container_id!).inspect()) as any).HostConfig.Runtime).toBe("runc");
    m.release("rt-1");
    await m.stop({ projectId: C.id, platform: native }, "test");
    db.query("UPDATE organizations SET builder_oci_runtime = 'no-such-runtime' WHERE id = ?").run(C.org);
    await expect(m.acquire({ projectId: C.id, platform: native }, "rt-2")).rejects.toThrow(/no-such-runtime/);
    expect(m.list(C.id)[0]!.state).toBe("absent");
    expect((await ours(id)).filter((c) => c.Labels[BUILDER_LABELS.project] === C.id)).toHaveLength(0);
  }, 120_000);

  test("an idle builder stops after the project's idle timeout", async () => {
    const { id, m } = isolated();
    const B = project("idle");
    idleMs.set(B.id, 1500);
    await m.acquire({ projectId: B.id, platform: native }, "idle-1");
    m.release("idle-1");
    expect(m.list(B.id)[0]!.state).toBe("idle");
    await until(() => m.list(B.id)[0]!.state === "absent", 30_000);
    expect(m.list(B.id)[0]!.state).toBe("absent");
    expect((await ours(id)).filter((c) => c.Labels[BUILDER_LABELS.project] === B.id)).toHaveLength(0);
    // Its network went with its last builder (Docker has room for ~30 bridge networks), and comes back with the next start.
    expect(await projectNetworks(id, B.id)).toHaveLength(0);
    await m.acquire({ projectId: B.id, platform: native }, "idle-2");
    expect(await projectNetworks(id, B.id)).toHaveLength(1);
    m.release("idle-2");
    await m.stop({ projectId: B.id, platform: native }, "test");
    expect(await projectNetworks(id, B.id)).toHaveLength(0);
    idleMs.delete(B.id);
  }, 60_000);

  test("a builder container that dies is noticed, the builds holding it are told, and it restarts on the next request", async () => {
    const lost: Lost[] = [];
    const { m } = isolated({ onBuilderLost: (l) => lost.push(l) });
    const A = project("dies");
    await m.watch();
    const before = await m.acquire({ projectId: A.id, platform: native }, "die-1");
    await m.acquire({ projectId: A.id, platform: native }, "die-1b");
    const row = m.list(A.id)[0]!;
    await docker.getContainer(row.container_id!).kill();
    await until(() => m.list(A.id)[0]!.state === "absent" && lost.length > 0, 60_000);
    expect(m.list(A.id)[0]!.state).toBe("absent");
    // serve wires this to the builds service, which fails exactly these builds.
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ projectId: A.id, platform: native, builderId: before.builderId, reason: "die" });
    expect(lost[0]!.holders.sort()).toEqual(["die-1", "die-1b"]);
    m.release("die-1");
    m.release("die-1b");
    const after = await m.acquire({ projectId: A.id, platform: native }, "die-2");
    expect(m.list(A.id)[0]!.container_id).not.toBe(row.container_id);
    expect(after.builderId).toBe(before.builderId);
    m.release("die-2");
  }, 180_000);

  test("after a crash, a new manager adopts running builders, removes orphans and forgets vanished ones", async () => {
    const { id, m } = isolated();
    const A = project("crash-a");
    const B = project("crash-b");
    await m.acquire({ projectId: A.id, platform: native }, "crash-a");
    await m.acquire({ projectId: B.id, platform: native }, "crash-b");
    m.close(); // the old serve is gone (no stop of its builders: a crash)
    // B's container vanishes while serve is down; an unknown labelled container appears.
    const rb = m.list(B.id)[0]!;
    await docker.getContainer(rb.container_id!).remove({ force: true, v: true });
    const orphan = await docker.createContainer({
      name: `slipway-orphan-${id}`,
      Image: image,
      Labels: { [BUILDER_LABELS.appliance]: id },
      Entrypoint: ["/bin/sleep", "600"],
    });
    await orphan.start();

    const next = manager({ applianceId: id });
    const r = await next.reconcile();
    const ra = next.list(A.id)[0]!;
    expect(r.adopted).toContain(ra.id);
    expect(r.removed).toContain(orphan.id);
    expect(r.lost.map((l) => l.projectId)).toContain(B.id);
    expect(next.list(B.id)[0]!.state).toBe("absent");
    expect(next.ready({ projectId: A.id, platform: native })?.socketPath).toBe(ra.socket_path!);
    const left = await ours(id);
    expect(left.map((c) => c.Id)).toEqual([ra.container_id!]);
    // B's network outlived its builder (a crash): reconcile removed it; A's stays with A's builder.
    expect(await projectNetworks(id, B.id)).toHaveLength(0);
    expect(await projectNetworks(id, A.id)).toHaveLength(1);
    expect(left.every((c) => c.Labels[BUILDER_LABELS.project] === A.id)).toBe(true);
  }, 180_000);
  // ---- What goes wrong. Each test runs on its own appliance id and leaves nothing behind. ----

  /** request() as the builds service calls it (GetBuildKitConnection polls): the first answer that is not `starting`. */
  const settle = async (mm: BuilderService, ref: BuilderRef, holder: string): Promise<BuilderStatus> => {
    const deadline = Date.now() + 240_000;
    for (;;) {
      const s = await mm.request(ref, holder);
      if (s.state !== "starting" || Date.now() > deadline) return s;
      await Bun.sleep(200);
    }
  };
  /** Nothing of a failed start is left: no container, no network, no socket directory. */
  const nothingLeft = async (appliance: string, projectId: string, from = db) => {
    expect(await ours(appliance)).toEqual([]);
    const nets = await docker.listNetworks({
      filters: JSON.stringify({
        label: [`${BUILDER_LABELS.appliance}=${appliance}`, `${BUILDER_LABELS.project}=${projectId}`],
      }),
    });
    expect(nets).toEqual([]);
    for (const b of from.query("SELECT id FROM builders WHERE project_id = ?").all(projectId) as { id: string }[])
      expect(existsSync(join(dir, "builders", b.id))).toBe(false);
  };
  /** The builder image with another entrypoint: a builder that misbehaves the way the test needs. */
  const imageWithEntrypoint = async (name: string, entrypoint: string[]) => {
    const ref = `slipway-test/${name}:${applianceId.toLowerCase()}`;
    const c = await docker.createContainer({ Image: image });
    try {
      const r = await run(
        ["docker", "commit", "--change", `ENTRYPOINT ${JSON.stringify(entrypoint)}`, "--change", "CMD []", c.id, ref],
        { timeoutMs: 120_000 },
      );
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await c.remove({ force: true, v: true }); // with the anonymous volume of the image's VOLUME
    }
    images.push(ref);
    return ref;
  };
  /** The manager names a project's network slipway-<last 8 alphanumerics of the appliance id>-<project id>. */
  const networkNameOf = (appliance: string, projectId: string) =>
    `slipway-${appliance
      .replace(/[^a-zA-Z0-9]/g, "")
      .slice(-8)
      .toLowerCase()}-${projectId.toLowerCase()}`;

  test("request(): a failed start is told once to each build that waited on it; a build's next request, or a new build, starts again and gets a ready builder", async () => {
    const { id: appliance, m: mm } = isolated();
    const P = project("retry");
    const ref = { projectId: P.id, platform: native };
    db.query("UPDATE organizations SET builder_oci_runtime = 'no-such-runtime' WHERE id = ?").run(P.org);
    expect(await mm.request(ref, "rq-1")).toEqual({ state: "starting" });
    expect(await mm.request(ref, "rq-2")).toEqual({ state: "starting" });
    const failed = await settle(mm, ref, "rq-1");
    expect(failed.state).toBe("failed");
    const error = (failed as { error: string }).error;
    expect(error).toMatch(/no-such-runtime/);
    // Both builds waited on that start: both are told, once.
    expect(await mm.request(ref, "rq-2")).toEqual({ state: "failed", error });
    expect(mm.list(P.id)[0]).toMatchObject({ state: "absent", container_id: null });
    expect(mm.list(P.id)[0]!.last_error).toMatch(/no-such-runtime/);
    await nothingLeft(appliance, P.id);
    // Asked again, a build gets a new start (which fails again: nothing changed).
    expect(await mm.request(ref, "rq-1")).toEqual({ state: "starting" });
    expect(await settle(mm, ref, "rq-1")).toEqual({ state: "failed", error });
    // A failure the waiting build heard as an exception (acquire) is nobody else's.
    await expect(mm.acquire(ref, "rq-4")).rejects.toThrow(/no-such-runtime/);
    await nothingLeft(appliance, P.id);

    // The operator fixes the runtime; a new build's request starts the builder, not the old failure.
    db.query("UPDATE organizations SET builder_oci_runtime = NULL WHERE id = ?").run(P.org);
    expect(await mm.request(ref, "rq-3")).toEqual({ state: "starting" });
    const ready = await settle(mm, ref, "rq-3");
    expect(ready.state).toBe("ready");
    const b = (ready as { builder: ReadyBuilder }).builder;
    expect(b).toMatchObject({ projectId: P.id, platform: native, runtime: "dockerd", emulated: false });
    expect((await listWorkersAt(b.socketPath, "dockerd", 10_000)).length).toBeGreaterThan(0);
    expect(mm.ready(ref)?.builderId).toBe(b.builderId);
    // Held by the builds that asked: not idle until each is released.
    expect(mm.list(P.id)[0]!.state).toBe("ready");
    for (const h of ["rq-1", "rq-2", "rq-3"]) mm.release(h);
    expect(mm.list(P.id)[0]!.state).toBe("idle");
    await mm.stop(ref, "test");
    await nothingLeft(appliance, P.id);
  }, 300_000);

  test("the engine refuses privileged: the refused container is removed, the builder runs the fallback profile, later builders go straight to it", async () => {
    const engine = arrangedEngine(docker, "refused");
    const { id: appliance, m: mm } = isolated({ docker: engine.engine });
    const P1 = project("refused-1");
    const P2 = project("refused-2");
    const b1 = await mm.acquire({ projectId: P1.id, platform: native }, "pr-1");
    expect(engine.asked.map((a) => a.privileged)).toEqual([true, false]);
    // The container the engine would not start is gone, not left created.
    expect(
      await docker
        .getContainer(engine.asked[0]!.id)
        .inspect()
        .then(
          () => "still there",
          (e) => e.statusCode,
        ),
    ).toBe(404);
    const row = mm.list(P1.id)[0]!;
    expect(row.security_profile).toBe("fallback");
    expect(row.container_id).toBe(engine.asked[1]!.id);
    const info = (await docker.getContainer(row.container_id!).inspect()) as any;
    expect(info.State.Running).toBe(true);
    expect(info.Config.Labels[BUILDER_LABELS.profile]).toBe("fallback");
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.CapDrop).toEqual(["SYS_RESOURCE"]);
    expect((await listWorkersAt(b1.socketPath, "dockerd", 10_000)).length).toBeGreaterThan(0);

    await mm.acquire({ projectId: P2.id, platform: native }, "pr-2");
    expect(engine.asked.map((a) => a.privileged)).toEqual([true, false, false]);
    expect(mm.list(P2.id)[0]!.security_profile).toBe("fallback");
    mm.release("pr-1");
    mm.release("pr-2");
    await mm.stop({ projectId: P1.id, platform: native }, "test");
    await mm.stop({ projectId: P2.id, platform: native }, "test");
    await nothingLeft(appliance, P1.id);
    await nothingLeft(appliance, P2.id);
  }, 300_000);

  test("a refusal is remembered per engine: a second builder service on the same database makes no privileged attempt; a changed engine tries again", async () => {
    const first = arrangedEngine(docker, "refused");
    const { id: a1, m: m1 } = isolated({ docker: first.engine });
    const P1 = project("remembered-1");
    await m1.acquire({ projectId: P1.id, platform: native }, "rm-1");
    expect(first.asked.map((a) => a.privileged)).toEqual([true, false]);
    m1.release("rm-1");
    await m1.stop({ projectId: P1.id, platform: native }, "test");
    m1.close();
    await nothingLeft(a1, P1.id);
    const remembered = db
      .query("SELECT engine_identity, oci_runtime, refusal FROM builder_engine_privileges WHERE engine_identity LIKE ?")
      .all(`%+${first.engineTag} %`) as { engine_identity: string; oci_runtime: string; refusal: string }[];
    expect(remembered).toHaveLength(1);
    expect(remembered[0]!.oci_runtime).toBe("");
    expect(remembered[0]!.refusal).toMatch(/unable to apply caps/);

    // A restarted serve: another builder service on the same database and the same engine.
    const again = arrangedEngine(docker, "refused", { engineTag: first.engineTag });
    const { id: a2, m: m2 } = isolated({ docker: again.engine });
    const P2 = project("remembered-2");
    await m2.acquire({ projectId: P2.id, platform: native }, "rm-2");
    expect(again.asked.map((a) => a.privileged)).toEqual([false]);
    expect(m2.list(P2.id)[0]!.security_profile).toBe("fallback");
    m2.release("rm-2");
    await m2.stop({ projectId: P2.id, platform: native }, "test");
    await nothingLeft(a2, P2.id);

    // The engine changed (same ID, another version): privileged is asked for again.
    const upgraded = arrangedEngine(docker, "refused", { engineTag: first.engineTag, version: "99.0.0-test" });
    const { id: a3, m: m3 } = isolated({ docker: upgraded.engine });
    const P3 = project("remembered-3");
    await m3.acquire({ projectId: P3.id, platform: native }, "rm-3");
    expect(upgraded.asked.map((a) => a.privileged)).toEqual([true, false]);
    m3.release("rm-3");
    await m3.stop({ projectId: P3.id, platform: native }, "test");
    await nothingLeft(a3, P3.id);
  }, 400_000);

  test("whenChanged(): a request that answered starting is woken when its builder is ready (no polling); an aborted wait ends at once", async () => {
    const { id: appliance, m: mm } = isolated();
    const P = project("woken");
    const ref = { projectId: P.id, platform: native };
    expect(await mm.request(ref, "wc-1")).toEqual({ state: "starting" });
    const left = new AbortController();
    const abandoned = mm.whenChanged(ref, left.signal);
    const waited = mm.whenChanged(ref, new AbortController().signal);
    expect(mm.watcherCount()).toBe(2);
    left.abort();
    await abandoned;
    expect(mm.watcherCount()).toBe(1);
    await waited;
    expect(mm.watcherCount()).toBe(0);
    const ready = await mm.request(ref, "wc-1");
    expect(ready.state).toBe("ready");
    // Nothing pending: a wait on a ready builder resolves at once.
    await mm.whenChanged(ref, new AbortController().signal);
    mm.release("wc-1");
    await mm.stop(ref, "test");
    await nothingLeft(appliance, P.id);
  }, 300_000);

  test("whenChanged() in the admission line: a request waiting for a slot is woken when one frees (a release, the idle builder's stop, its own start), never by a clock", async () => {
    const { id: appliance, m: mm } = isolated({ maxRunning: 1 });
    const P1 = project("line-1");
    const P2 = project("line-2");
    const r1 = { projectId: P1.id, platform: native };
    const r2 = { projectId: P2.id, platform: native };
    await mm.acquire(r1, "ln-1");
    expect(await mm.request(r2, "ln-2")).toEqual({ state: "starting" }); // in line: the host's one slot is taken
    const waiting = mm.whenChanged(r2, new AbortController().signal);
    expect(mm.watcherCount()).toBe(1);
    mm.release("ln-1");
    await waiting;
    // Asked again: the idle builder is stopped for it, then it starts; each step wakes it.
    let asks = 0;
    for (let s = await mm.request(r2, "ln-2"); s.state === "starting"; s = await mm.request(r2, "ln-2")) {
      asks++;
      await mm.whenChanged(r2, new AbortController().signal); // never aborts: only a wake-up ends it
    }
    expect(mm.ready(r2)).not.toBeNull();
    expect(asks).toBeGreaterThan(0);
    expect(mm.list(P1.id)[0]!.state).toBe("absent");
    mm.release("ln-2");
    await mm.stop(r2, "test");
    await nothingLeft(appliance, P1.id);
    await nothingLeft(appliance, P2.id);
  }, 400_000);

  test("the engine grants privileged: one create, the builder recorded and labelled privileged", async () => {
    const engine = arrangedEngine(docker, "granted");
    const { id: appliance, m: mm } = isolated({ docker: engine.engine });
    const P = project("granted");
    const b = await mm.acquire({ projectId: P.id, platform: native }, "pg-1");
    expect(engine.asked.map((a) => a.privileged)).toEqual([true]);
    const row = mm.list(P.id)[0]!;
    expect(row.security_profile).toBe("privileged");
    expect(row.container_id).toBe(engine.asked[0]!.id);
    expect(
      ((await docker.getContainer(row.container_id!).inspect()) as any).Config.Labels[BUILDER_LABELS.profile],
    ).toBe("privileged");
    expect((await listWorkersAt(b.socketPath, "dockerd", 10_000)).length).toBeGreaterThan(0);
    mm.release("pg-1");
    await mm.stop({ projectId: P.id, platform: native }, "test");
    await nothingLeft(appliance, P.id);
  }, 300_000);

  test("a builder that never answers fails its start after the ready timeout, and is removed", async () => {
    const sleeper = await imageWithEntrypoint("sleeper", ["/bin/sleep", "3600"]);
    const { id: appliance, m: mm } = isolated({ image: sleeper, readyTimeoutMs: 3000 });
    const P = project("never-ready");
    const ref = { projectId: P.id, platform: native };
    const e = await mm.acquire(ref, "nr-1").then(
      () => null,
      (x: Error) => x,
    );
    expect(e).toBeInstanceOf(BuilderUnavailableError);
    expect(e!.message).toMatch(/did not become ready within 3000 ms \(socket not there yet\)/);
    expect(mm.list(P.id)[0]).toMatchObject({ state: "absent", container_id: null });
    expect(mm.ready(ref)).toBeNull();
    await nothingLeft(appliance, P.id);
  }, 300_000);

  test("a builder container that exits before it is ready fails its start with its exit code and last log lines; no build is told it was lost", async () => {
    const crasher = await imageWithEntrypoint("crasher", ["/bin/sh", "-c", "echo builder-boom-marker >&2; exit 3"]);
    const lostHere: Lost[] = [];
    const engine = arrangedEngine(docker, "refused");
    const { id: appliance, m: mm } = isolated({
      docker: engine.engine,
      image: crasher,
      onBuilderLost: (l) => lostHere.push(l),
    });
    await mm.watch();
    const P = project("exits");
    const ref = { projectId: P.id, platform: native };
    // The engine's own events, to know when the container's die and destroy have been sent to the manager too.
    const events = (await docker.getEvents({
      filters: JSON.stringify({
        type: ["container"],
        event: ["destroy"],
        label: [`${BUILDER_LABELS.appliance}=${appliance}`],
      }),
    })) as unknown as NodeJS.ReadableStream & { destroy(): void };
    const destroyed = new Set<string>();
    events.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
        destroyed.add((JSON.parse(line) as { id: string }).id);
    });
    try {
      expect(await mm.request(ref, "ex-1")).toEqual({ state: "starting" });
      const failed = await settle(mm, ref, "ex-1");
      expect(failed.state).toBe("failed");
      expect((failed as { error: string }).error).toMatch(
        /builder container exited \(code 3\) before it was ready: .*builder-boom-marker/,
      );
      // The container that ran (the fallback one: privileged was refused) died and was removed.
      const ran = engine.asked.find((a) => !a.privileged)!.id;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !destroyed.has(ran)) await Bun.sleep(50);
      expect(destroyed.has(ran)).toBe(true);
      // What is asserted is that nothing happens: the manager's own stream gets a moment for the same events.
      await Bun.sleep(1000);
    } finally {
      events.destroy();
    }
    expect(lostHere).toEqual([]);
    expect(mm.list(P.id)[0]!.last_error).toMatch(/exited \(code 3\)/);
    await nothingLeft(appliance, P.id);
  }, 300_000);

  test("a missing builder image: the start fails naming the commands that make one; nothing is created", async () => {
    const absent = `slipway/builder-dockerd:absent-${applianceId.toLowerCase()}`;
    const { id: appliance, m: mm } = isolated({ image: absent });
    const P = project("no-image");
    const ref = { projectId: P.id, platform: native };
    expect(await mm.request(ref, "mi-1")).toEqual({ state: "starting" });
    const failed = await settle(mm, ref, "mi-1");
    expect(failed.state).toBe("failed");
    expect((failed as { error: string }).error).toBe(
      `builder image ${absent} (runtime dockerd) is not present on the Docker engine; run \`slipway builder-image build\` or \`slipway builder-image import FILE.tar\``,
    );
    const e = await mm.acquire(ref, "mi-2").then(
      () => null,
      (x: Error) => x,
    );
    expect(e).toBeInstanceOf(PreconditionError);
    expect(e!.message).toContain("is not present on the Docker engine");
    expect(mm.list(P.id)).toEqual([]);
    await nothingLeft(appliance, P.id);
  }, 120_000);

  test("a network with the builder network's name that is not ours: the start is refused, the network neither used nor removed", async () => {
    const { id: appliance, m: mm } = isolated();
    const P = project("squatted");
    const ref = { projectId: P.id, platform: native };
    const name = networkNameOf(appliance, P.id);
    const foreign = await docker.createNetwork({
      Name: name,
      Driver: "bridge",
      Labels: { "org.example.owner": "someone-else" },
    });
    foreignNetworks.push(foreign.id);
    const e = await mm.acquire(ref, "fn-1").then(
      () => null,
      (x: Error) => x,
    );
    expect(e).toBeInstanceOf(PreconditionError);
    expect(e!.message).toBe(`Docker network ${name} exists but is not this project's builder network`);
    const failed = await settle(mm, ref, "fn-2");
    expect(failed).toEqual({
      state: "failed",
      error: `Docker network ${name} exists but is not this project's builder network`,
    });
    const after = (await docker.getNetwork(name).inspect()) as {
      Id: string;
      Labels: Record<string, string>;
      Containers: Record<string, unknown>;
    };
    expect(after.Id).toBe(foreign.id);
    expect(after.Labels).toEqual({ "org.example.owner": "someone-else" });
    expect(after.Containers).toEqual({});
    expect(await ours(appliance)).toEqual([]);
    expect(mm.list(P.id)[0]).toMatchObject({ state: "absent", container_id: null });
  }, 120_000);

  test("reconcile under the other runtime: a running dockerd builder is not adopted but removed, and reported lost", async () => {
    // An appliance of its own, database included: reconcile accounts for every builder row it holds.
    const own = openDatabase(join(dir, "runtime-switch.db"));
    applyMigrations(own);
    const { id: appliance, m: first } = isolated({ db: own });
    const P = project("runtime-switch", own);
    const ref = { projectId: P.id, platform: native };
    await first.acquire(ref, "rs-1");
    first.release("rs-1");
    first.close(); // serve stops; the operator switches builders.runtime to buildkitd
    const row = first.list(P.id)[0]!;
    expect(row.runtime).toBe("dockerd");
    const next = manager({
      db: own,
      applianceId: appliance,
      runtime: "buildkitd",
      image: `moby/buildkit:absent-${applianceId.toLowerCase()}`,
    });
    const r = await next.reconcile();
    expect(r.adopted).toEqual([]);
    expect(r.lost).toEqual([{ builderId: row.id, projectId: P.id, platform: native }]);
    expect(
      await docker
        .getContainer(row.container_id!)
        .inspect()
        .then(
          () => "still there",
          (e) => e.statusCode,
        ),
    ).toBe(404);
    expect(next.list(P.id)[0]).toMatchObject({
      state: "absent",
      container_id: null,
      last_error: "not running when serve started",
    });
    expect(next.ready(ref)).toBeNull();
    await nothingLeft(appliance, P.id, own);
    next.close();
    own.close();
  }, 300_000);
});
