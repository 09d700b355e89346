/**
 * @module test/e2e/builders.test
 * The builder manager against the real Docker engine and the real `dockerd` builder image
 * (assembled from Debian packages; cached between runs): start on demand, ListWorkers through the
 * socket, real builds whose cache survives a restart and not a reset, one container for 20
 * concurrent requests, per-project networks that cannot reach each other, idle stop,
 * reconciliation after a crash, limits, labels and the security-profile fallback.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builderManagerFactory, BUILDER_LABELS, type BuilderManager, type ReadyBuilder } from "../../src/builders/index.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { run } from "../../src/host/run.ts";
import { newId } from "../../src/ids.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { openBuilderSocket } from "../../src/router/index.ts";
import { plainVolumeManager } from "../../src/volumes/index.ts";
import { listWorkers } from "../../src/wire/buildkit.ts";
import { builderImageMissing, ensureDockerdBuilderImage } from "../support/builder-image.ts";
import { integrationSuite } from "../support/integration.ts";

const missing = await builderImageMissing();

integrationSuite("builders on the local Docker engine", missing, () => {
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const dir = mkdtempSync(join(tmpdir(), "slipway-builders-"));
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const applianceId = `test${newId("a").slice(2, 12)}`;
  let image = "";
  const idleMs = new Map<string, number>();
  let published: string[] = [];
  const managers: BuilderManager[] = [];
  const manager = () => {
    const m = builderManagerFactory({
      db,
      docker,
      volumes: plainVolumeManager({ root: join(dir, "volumes") }),
      applianceId,
      dataDir: dir,
      runtime: "dockerd",
      image,
      log: silentLogger,
      idleTimeoutMs: (p) => idleMs.get(p) ?? 600_000,
      readyTimeoutMs: 120_000,
      onAddresses: (a) => (published = a),
    });
    managers.push(m);
    return m;
  };
  const project = (name: string) => {
    const org = newId("org");
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)").run(org, `${name}-${org.slice(-6)}`, name, new Date().toISOString());
    const id = newId("prj");
    db.query("INSERT INTO projects (id, org_id, name, builder_cpus, builder_memory_mb, created_at) VALUES (?, ?, ?, 1, 1024, ?)").run(id, org, name, new Date().toISOString());
    return { id, org };
  };
  const ours = async () => (await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${applianceId}`] }) })) as { Id: string; State: string; Labels: Record<string, string> }[];
  const projectNetworks = async (projectId: string) =>
    (await docker.listNetworks({ filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${applianceId}`, `${BUILDER_LABELS.project}=${projectId}`] }) })) as { Id: string }[];
  let m: BuilderManager;
  let A: { id: string; org: string };
  let B: { id: string; org: string };
  let native = "linux/amd64";

  beforeAll(async () => {
    image = (await ensureDockerdBuilderImage()).ref;
    const info = (await docker.info()) as { Architecture: string };
    native = info.Architecture === "aarch64" ? "linux/arm64" : "linux/amd64";
    m = manager();
    A = project("alpha");
    B = project("beta");
  }, 20 * 60_000);

  afterAll(async () => {
    for (const x of managers) x.close();
    for (const c of await ours()) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    const nets = (await docker.listNetworks({ filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${applianceId}`] }) })) as { Id: string }[];
    for (const n of nets) await docker.getNetwork(n.Id).remove().catch(() => {});
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const buildContext = (marker: string) => {
    const ctx = join(dir, `ctx-${marker}`);
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, "Dockerfile"), `FROM scratch\nCOPY payload.txt /payload.txt\nCOPY payload.txt /again.txt\n`);
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

  test("a builder starts for project A, answers ListWorkers on its socket, and builds; the second build is cached", async () => {
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
    const ctx = buildContext("a");
    await m.stop({ projectId: A.id, platform: native }, "test");
    expect((await ours()).filter((c) => c.Labels[BUILDER_LABELS.project] === A.id)).toHaveLength(0);
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
    await m.stop({ projectId: A.id, platform: native }, "test");
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => m.acquire({ projectId: A.id, platform: native }, `c-${i}`)));
    expect(new Set(got.map((g) => g.builderId)).size).toBe(1);
    const containers = (await ours()).filter((c) => c.Labels[BUILDER_LABELS.project] === A.id);
    expect(containers).toHaveLength(1);
    for (let i = 0; i < 20; i++) m.release(`c-${i}`);
  }, 180_000);

  test("labels, limits, no published ports, only its own mounts, and the fallback profile where privileged is refused", async () => {
    const row = m.list(A.id)[0]!;
    const info = (await docker.getContainer(row.container_id!).inspect()) as any;
    expect(info.Config.Labels).toMatchObject({
      [BUILDER_LABELS.appliance]: applianceId,
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
    expect((info.Mounts as { Source: string; Destination: string }[]).map((x) => x.Destination).sort()).toEqual(["/run/slipway", "/var/lib/docker"]);
    // The engine's verdict decides the profile: try privileged the way the manager does.
    const probe = await run(["docker", "run", "--rm", "--privileged", "--entrypoint", "/bin/true", image], { timeoutMs: 60_000 });
    expect(row.security_profile).toBe(probe.code === 0 ? "privileged" : "fallback");
    if (row.security_profile === "fallback") {
      expect(info.HostConfig.Privileged).toBe(false);
      expect(info.HostConfig.CapAdd).toEqual(["ALL"]);
      expect(info.HostConfig.CapDrop).toEqual(["SYS_RESOURCE"]);
    }
  }, 120_000);

  test("two projects: two containers on two networks that cannot reach each other", async () => {
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
      Cmd: ["perl", "-MIO::Socket::INET", "-e", 'my $s = IO::Socket::INET->new(LocalPort => 7411, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { print $c "hi\\n"; close $c }'],
      AttachStdout: false,
      AttachStderr: false,
    });
    await listener.start({ Detach: true });
    await Bun.sleep(500);
    const probe = ["perl", "-MIO::Socket::INET", "-e", `exit(IO::Socket::INET->new(PeerAddr => "${ipB}:7411", Timeout => 3) ? 0 : 1)`];
    const fromHost = await run(probe, { timeoutMs: 10_000 });
    expect(fromHost.code).toBe(0); // the listener is real
    const fromA = await run(["docker", "exec", ra.container_id!, ...probe], { timeoutMs: 20_000 });
    expect(fromA.code).not.toBe(0);
    m.release("net-a");
    m.release("net-b");
    expect(a.builderId).not.toBe(b.builderId);
  }, 240_000);

  test("an organization's OCI runtime: used when the engine knows it; refused cleanly when not", async () => {
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
    expect((await ours()).filter((c) => c.Labels[BUILDER_LABELS.project] === C.id)).toHaveLength(0);
  }, 120_000);

  test("an idle builder stops after the project's idle timeout", async () => {
    idleMs.set(B.id, 1500);
    await m.acquire({ projectId: B.id, platform: native }, "idle-1");
    m.release("idle-1");
    expect(m.list(B.id)[0]!.state).toBe("idle");
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && m.list(B.id)[0]!.state !== "absent") await Bun.sleep(200);
    expect(m.list(B.id)[0]!.state).toBe("absent");
    expect((await ours()).filter((c) => c.Labels[BUILDER_LABELS.project] === B.id)).toHaveLength(0);
    // Its network went with its last builder (Docker has room for ~30 bridge networks), and comes back with the next start.
    expect(await projectNetworks(B.id)).toHaveLength(0);
    await m.acquire({ projectId: B.id, platform: native }, "idle-2");
    expect(await projectNetworks(B.id)).toHaveLength(1);
    m.release("idle-2");
    await m.stop({ projectId: B.id, platform: native }, "test");
    expect(await projectNetworks(B.id)).toHaveLength(0);
    idleMs.delete(B.id);
  }, 60_000);

  test("a builder container that dies is noticed and restarted on the next request", async () => {
    await m.watch();
    const before = await m.acquire({ projectId: A.id, platform: native }, "die-1");
    const row = m.list(A.id)[0]!;
    await docker.getContainer(row.container_id!).kill();
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && m.list(A.id)[0]!.state !== "absent") await Bun.sleep(100);
    expect(m.list(A.id)[0]!.state).toBe("absent");
    m.release("die-1");
    const after = await m.acquire({ projectId: A.id, platform: native }, "die-2");
    expect(m.list(A.id)[0]!.container_id).not.toBe(row.container_id);
    expect(after.builderId).toBe(before.builderId);
    m.release("die-2");
  }, 180_000);

  test("after a crash, a new manager adopts running builders, removes orphans and forgets vanished ones", async () => {
    await m.acquire({ projectId: A.id, platform: native }, "crash-a");
    await m.acquire({ projectId: B.id, platform: native }, "crash-b");
    m.close(); // the old serve is gone (no stop of its builders: a crash)
    // B's container vanishes while serve is down; an unknown labelled container appears.
    const rb = m.list(B.id)[0]!;
    await docker.getContainer(rb.container_id!).remove({ force: true });
    const orphan = await docker.createContainer({ name: `slipway-orphan-${applianceId}`, Image: image, Labels: { [BUILDER_LABELS.appliance]: applianceId }, Entrypoint: ["/bin/sleep", "600"] });
    await orphan.start();

    const next = manager();
    const r = await next.reconcile();
    const ra = next.list(A.id)[0]!;
    expect(r.adopted).toContain(ra.id);
    expect(r.removed).toContain(orphan.id);
    expect(r.lost.map((l) => l.projectId)).toContain(B.id);
    expect(next.list(B.id)[0]!.state).toBe("absent");
    expect(next.ready({ projectId: A.id, platform: native })?.socketPath).toBe(ra.socket_path!);
    const left = await ours();
    expect(left.map((c) => c.Id)).toEqual([ra.container_id!]);
    // B's network outlived its builder (a crash): reconcile removed it; A's stays with A's builder.
    expect(await projectNetworks(B.id)).toHaveLength(0);
    expect(await projectNetworks(A.id)).toHaveLength(1);
    expect(left.every((c) => c.Labels[BUILDER_LABELS.project] === A.id)).toBe(true);
    m = next;
  }, 180_000);
});
