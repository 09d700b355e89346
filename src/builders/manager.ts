/**
 * @module builders/manager
 * One BuildKit container per (project, platform) on the local Docker engine, started when a build
 * asks for it, shared by that project's concurrent builds, stopped when idle. Its lifecycle
 * (absent → starting → ready ⇄ idle → stopping → absent) is kept in SQLite so a restarted serve
 * adopts what still runs; Docker labels say which containers are Slipway's.
 *
 * Builders start only within their organization's max_running_builders quota and the host's
 * cap (see admit()): otherwise the request waits in a fair line, bounded in time.
 *
 * Isolation per builder: its own bridge network with inter-container traffic off, no published
 * ports (the build endpoint reaches it through a socket directory bind-mounted from the host), the
 * project's CPU/memory limits and a pids limit, nothing mounted but that directory and its cache
 * volume.
 */
import type { Database } from "bun:sqlite";
import type Docker from "dockerode";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { InvalidInputError, NotFoundError, PreconditionError, QuotaExceededError, ResourceExhaustedError, SlipwayError, UnavailableError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Logger } from "../log/logger.ts";
import { cappedSettings, type QuotasService } from "../orgs/quotas.ts";
import type { BuilderRuntime } from "../router/index.ts";
import type { VolumeManager, VolumeUsage } from "../volumes/index.ts";
import { builderSettingsKey, imageCurrencyFactory, type OutdatedBuilder } from "./currency.ts";
import { emulationProblem, emulationStatus, type EmulationStatus } from "./emulation.ts";
import { listWorkersAt } from "./image/grpc.ts";
import { ensureProjectNetwork } from "./network.ts";
import { bridgeName, type PolicyNames } from "./network-policy.ts";
import { BuilderUnavailableError, waitReady } from "./readiness.ts";
import { CONTAINER_RUN_DIR, REGISTRY_CA_FILE, RUNTIMES, normalizePlatform, platformOfArch } from "./runtimes.ts";
import { FALLBACK_PROFILE, PRIVILEGED_PROFILE, isPrivilegeRefusal, type SecurityProfileName } from "./security.ts";

export type BuilderState = "absent" | "starting" | "ready" | "idle" | "stopping";

export interface BuilderRow {
  id: string;
  project_id: string;
  platform: string;
  runtime: BuilderRuntime;
  state: BuilderState;
  container_id: string | null;
  container_name: string | null;
  network_id: string | null;
  image: string | null;
  image_id: string | null;
  security_profile: SecurityProfileName | null;
  oci_runtime: string | null;
  emulated: number;
  socket_path: string | null;
  last_error: string | null;
  started_at: string | null;
  ready_at: string | null;
  last_used_at: string | null;
  updated_at: string;
}

/** What a build needs to reach its builder. */
export interface ReadyBuilder {
  builderId: string;
  projectId: string;
  platform: string;
  runtime: BuilderRuntime;
  socketPath: string;
  emulated: boolean;
}

export type BuilderStatus = { state: "ready"; builder: ReadyBuilder } | { state: "starting" } | { state: "failed"; error: string };

export interface BuilderRef {
  projectId: string;
  platform: string;
}

interface ProjectRow {
  id: string;
  org_id: string;
  cache_size_gb: number;
  cache_keep_days: number;
  builder_cpus: number;
  builder_memory_mb: number;
  builder_idle_timeout_seconds: number;
  builder_oci_runtime: string | null;
}

export { BuilderUnavailableError };

export interface BuilderManagerDeps {
  db: Database;
  docker: Docker;
  volumes: Pick<VolumeManager, "ensure" | "close" | "reset" | "delete" | "usage" | "encryption">;
  applianceId: string;
  /** Socket directories live under `<dataDir>/builders/<builder id>`. */
  dataDir: string;
  runtime: BuilderRuntime;
  /** Image reference for the runtime (tag or digest). */
  image: string;
  log: Logger;
  pidsLimit?: number;
  /** Registries builds may use over plain HTTP (host:port, or CIDRs for dockerd). */
  insecureRegistries?: readonly string[];
  /** dockerd: containerd image store (see runtimes.ts). */
  containerdStore?: boolean;
  /** Allow platforms other than the engine's own through qemu-user binfmt handlers. */
  allowEmulation?: boolean;
  /** Where binfmt handlers are registered (tests point elsewhere). */
  binfmtDir?: string;
  /** Overrides the project's idle timeout (tests). */
  idleTimeoutMs?: (projectId: string) => number;
  /** How long a starting builder may take to answer ListWorkers. */
  readyTimeoutMs?: number;
  /** How often the configured image is re-resolved besides on image events (see currency.ts). */
  imageRefreshMs?: number;
  /** The appliance's registry as builders reach it: `host:port` (its host mapped to the builder
   * network's gateway unless it is an IP address) and the CA its certificate chains to. */
  registry?: { host: string; caPem: string; aliases?: readonly string[] };
  /** The organizations' quotas: builders running at once, and the size any one builder gets. */
  quotas?: Pick<QuotasService, "limits">;
  /** Builders running at once on this host, whatever their organization (each holds a network). */
  maxRunning?: number;
  /** How long a builder request may wait for a slot before it is refused. */
  queueTimeoutMs?: number;
  /** The builder network policy (network-policy.ts): builder bridges are named for it, and no
   * builder starts while it is on but not in force (fail closed). */
  networkPolicy?: { names: PolicyNames; refusal(): string | null };
  /** Called with every running builder's address whenever that set changes (egress allows them). */
  onAddresses?: (addrs: string[]) => void;
  /** Called when a builder's container dies or vanishes while builds hold it. */
  onBuilderLost?: (ref: BuilderRef & { builderId: string; holders: string[]; reason: string }) => void;
  now?: () => Date;
}

const LABEL = {
  appliance: "io.slipway.appliance",
  builder: "io.slipway.builder",
  org: "io.slipway.org",
  project: "io.slipway.project",
  platform: "io.slipway.platform",
  runtime: "io.slipway.runtime",
  image: "io.slipway.image-digest",
  profile: "io.slipway.security-profile",
  settings: "io.slipway.builder-settings",
} as const;
export const BUILDER_LABELS = LABEL;

const key = (r: BuilderRef) => `${r.projectId}|${r.platform}`;

export function builderManagerFactory(deps: BuilderManagerDeps) {
  const { db, docker, log } = deps;
  const now = deps.now ?? (() => new Date());
  const spec = RUNTIMES[deps.runtime];
  const short = deps.applianceId.replace(/[^a-zA-Z0-9]/g, "").slice(-8).toLowerCase();
  const readyTimeoutMs = deps.readyTimeoutMs ?? 90_000;

  /** Builds holding each builder (by key); a builder with none is idle. */
  const holders = new Map<string, Set<string>>();
  const starting = new Map<string, Promise<ReadyBuilder>>();
  /** A failed start's error, for the builds that were waiting on it: each is told once; a build
   * that came later starts the builder again rather than inheriting an old failure. */
  const failures = new Map<string, { error: string; holders: Set<string> }>();
  const idleTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Containers we are stopping ourselves: their `die` event is no loss. */
  const expectedDeaths = new Set<string>();
  let privilegedRefused = false;
  /** builder id → its address on its network, for runners' egress rules. */
  const addresses = new Map<string, string>();
  const publishAddresses = () => {
    try {
      deps.onAddresses?.([...new Set(addresses.values())]);
    } catch (e) {
      log.warn("publishing builder addresses failed", { error: (e as Error).message });
    }
  };
  const learnAddress = async (builderId: string, containerId: string) => {
    const info = (await docker.getContainer(containerId).inspect().catch(() => null)) as { NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> } } | null;
    const net = Object.values(info?.NetworkSettings?.Networks ?? {})[0];
    if (net?.IPAddress) addresses.set(builderId, net.IPAddress);
    publishAddresses();
  };
  const forgetAddress = (builderId: string) => {
    if (addresses.delete(builderId)) publishAddresses();
  };
  let nativePlatform: string | null = null;
  /** The engine's CPU count: a builder never asks for more (the engine refuses such a container). */
  let engineCpus = Number.POSITIVE_INFINITY;
  let events: Readable | null = null;
  let closed = false;
  /** Idle builders on an old image are recreated only once watch() runs (after serve reconciled volumes). */
  let upgrading = false;
  const currency = imageCurrencyFactory({
    docker,
    image: deps.image,
    settings: builderSettingsKey({ runtime: deps.runtime, containerdStore: deps.containerdStore, insecureRegistries: deps.insecureRegistries }),
    log,
    refreshMs: deps.imageRefreshMs,
    onChange: () => upgradeIdle(),
  });

  const row = (r: BuilderRef) => db.query("SELECT * FROM builders WHERE project_id = ? AND platform = ?").get(r.projectId, r.platform) as BuilderRow | null;
  const setState = (id: string, state: BuilderState, extra: Partial<BuilderRow> = {}) => {
    const cols = Object.keys(extra);
    db.query(`UPDATE builders SET state = ?, updated_at = ?${cols.map((c) => `, ${c} = ?`).join("")} WHERE id = ?`).run(
      state,
      now().toISOString(),
      ...cols.map((c) => (extra as Record<string, string | number | null>)[c] ?? null),
      id,
    );
  };
  const project = (projectId: string) =>
    db
      .query(
        `SELECT p.id, p.org_id, p.cache_size_gb, p.cache_keep_days, p.builder_cpus, p.builder_memory_mb, p.builder_idle_timeout_seconds, o.builder_oci_runtime
         FROM projects p JOIN organizations o ON o.id = p.org_id WHERE p.id = ?`,
      )
      .get(projectId) as ProjectRow | null;

  const containerName = (r: BuilderRef) => `slipway-${short}-${r.projectId.toLowerCase()}-${r.platform.replaceAll("/", "-")}`;
  const networkName = (projectId: string) => `slipway-${short}-${projectId.toLowerCase()}`;
  const socketDir = (builderId: string) => join(deps.dataDir, "builders", builderId);
  const toReady = (b: BuilderRow): ReadyBuilder => ({
    builderId: b.id,
    projectId: b.project_id,
    platform: b.platform,
    runtime: b.runtime,
    socketPath: b.socket_path!,
    emulated: b.emulated === 1,
  });

  async function engineNativePlatform(): Promise<string> {
    if (nativePlatform) return nativePlatform;
    let info: { Architecture?: string; NCPU?: number };
    try {
      info = (await docker.info()) as typeof info;
    } catch (e) {
      // A build asking for its builder gets `unavailable`, not an internal error; where the engine
      // was looked for (a host path) stays in the appliance's log.
      log.warn("the Docker engine is not reachable", { error: (e as Error).message });
      throw new UnavailableError("the Docker engine is not reachable: builders cannot start until it is (the appliance's log says why)");
    }
    if (info.NCPU && info.NCPU > 0) engineCpus = info.NCPU;
    const p = platformOfArch(info.Architecture ?? "");
    if (!p) throw new PreconditionError(`the Docker engine reports an architecture Slipway does not know: ${info.Architecture}`);
    nativePlatform = p;
    return p;
  }

  /** Validates a platform for this host: native, or emulated when allowed and registered. */
  async function resolvePlatform(input: string): Promise<{ platform: string; emulated: boolean }> {
    const platform = normalizePlatform(input);
    if (!platform) throw new InvalidInputError(`unknown platform ${JSON.stringify(input)}`, [{ pointer: "/platform", detail: "expected linux/amd64, linux/arm64, ..." }]);
    const native = await engineNativePlatform();
    if (platform === native) return { platform, emulated: false };
    if (!deps.allowEmulation) {
      throw new PreconditionError(
        `platform ${platform} is not this host's (${native}) and QEMU emulation is off; an operator can enable it with builders.allow_emulation = true (SLIPWAY_BUILDERS_ALLOW_EMULATION=true) once qemu-user-static is installed on the Docker host`,
      );
    }
    const problem = emulationProblem(platform, deps.binfmtDir);
    if (problem) throw new PreconditionError(`platform ${platform} needs QEMU emulation on this host (builders.allow_emulation is on), but ${problem}`);
    return { platform, emulated: true };
  }

  /** Network creations in flight, by project: a project's platforms start at once (see ensureProjectNetwork). */
  const networkCreations = new Map<string, Promise<string>>();
  function ensureNetwork(p: ProjectRow): Promise<string> {
    const pending = networkCreations.get(p.id);
    if (pending) return pending;
    const bridge = deps.networkPolicy ? bridgeName(deps.networkPolicy.names, networkName(p.id)) : undefined;
    const created = ensureProjectNetwork(docker, { name: networkName(p.id), projectId: p.id, labels: { [LABEL.appliance]: deps.applianceId, [LABEL.org]: p.org_id, [LABEL.project]: p.id }, projectLabel: LABEL.project, ...(bridge ? { bridge } : {}) }, log).finally(() => networkCreations.delete(p.id));
    networkCreations.set(p.id, created);
    return created;
  }

  /**
   * Removes the project's network once none of its builders runs. Networks exist only beside
   * running builders: Docker's default address pools hold about 30 bridge networks, so one per
   * project for good would stop an appliance with more projects than that from starting builders.
   * A network that still has a container attached (a start racing this) is left alone.
   */
  async function removeNetworkIfUnused(projectId: string, except?: string) {
    const busy = db.query("SELECT 1 FROM builders WHERE project_id = ? AND state != 'absent' LIMIT 1").get(projectId);
    if (busy || [...starting.keys()].some((k) => k !== except && k.startsWith(`${projectId}|`))) return;
    try {
      // Only the network we made for this project: one that merely has its name is someone else's.
      const n = (await docker.getNetwork(networkName(projectId)).inspect()) as { Id: string; Labels?: Record<string, string> };
      if (n.Labels?.[LABEL.appliance] !== deps.applianceId || n.Labels?.[LABEL.project] !== projectId) return;
      await docker.getNetwork(n.Id).remove();
    } catch (e) {
      if (!isNotFound(e) && !/active endpoints/i.test(String((e as Error).message))) log.warn("builder network removal failed", { project: projectId, error: (e as Error).message });
    }
  }

  async function removeContainer(idOrName: string) {
    expectedDeaths.add(idOrName);
    try {
      await docker.getContainer(idOrName).remove({ force: true, v: true });
    } catch (e) {
      if (!isNotFound(e) && !/removal of container .* is already in progress/i.test(String((e as Error).message))) throw e;
    }
  }

  /** Removes a container by name and waits until the name is free (removal may be in progress). */
  async function freeName(name: string) {
    for (let i = 0; i < 100; i++) {
      await removeContainer(name);
      try {
        await docker.getContainer(name).inspect();
      } catch (e) {
        if (isNotFound(e)) return;
        throw e;
      }
      await Bun.sleep(100);
    }
    throw new BuilderUnavailableError(`the old builder container ${name} could not be removed`);
  }

  /** Fail closed: the policy is on but not in force (never applied, or a re-apply failed). */
  function assertFiltered() {
    const refusal = deps.networkPolicy?.refusal();
    if (refusal) throw new PreconditionError(refusal);
  }

  /** Whether a network's bridge is one the policy filters (a network from before it is not). */
  async function onPolicyBridge(networkId: string | null): Promise<boolean> {
    if (!deps.networkPolicy) return true;
    if (!networkId) return false;
    const n = (await docker.getNetwork(networkId).inspect().catch(() => null)) as { Options?: Record<string, string> } | null;
    return n?.Options?.["com.docker.network.bridge.name"]?.startsWith(deps.networkPolicy.names.bridgePrefix) ?? false;
  }

  async function createAndStart(b: BuilderRow, p: ProjectRow, networkId: string, imageId: string, volumePath: string, profile: SecurityProfileName, run: { cmd: string[]; env: string[] }) {
    assertFiltered();
    const name = containerName({ projectId: b.project_id, platform: b.platform });
    await freeName(name); // a stale one from a crash, or one that just died
    const sec = profile === "privileged" ? PRIVILEGED_PROFILE : FALLBACK_PROFILE;
    const reg = deps.registry ? await registryAccess(networkId, socketDir(b.id)) : null;
    const c = await docker.createContainer({
      name,
      Image: deps.image,
      Cmd: run.cmd,
      Env: run.env,
      Labels: {
        [LABEL.appliance]: deps.applianceId,
        [LABEL.builder]: b.id,
        [LABEL.org]: p.org_id,
        [LABEL.project]: p.id,
        [LABEL.platform]: b.platform,
        [LABEL.runtime]: deps.runtime,
        [LABEL.image]: imageId,
        [LABEL.profile]: profile,
        [LABEL.settings]: currency.wanted().settings,
      },
      HostConfig: {
        ...sec,
        Binds: [`${socketDir(b.id)}:${CONTAINER_RUN_DIR}`, `${volumePath}:${spec.stateDir}`],
        // Mounts, not Binds: a certs.d directory is named host:port, and Binds split on colons.
        ...(reg ? { ExtraHosts: reg.extraHosts, Mounts: reg.mounts } : {}),
        NetworkMode: networkId,
        NanoCpus: Math.min(p.builder_cpus, engineCpus) * 1e9,
        Memory: p.builder_memory_mb * 1024 * 1024,
        MemorySwap: p.builder_memory_mb * 1024 * 1024,
        PidsLimit: deps.pidsLimit ?? 16_384,
        PortBindings: {},
        PublishAllPorts: false,
        RestartPolicy: { Name: "no" },
        // Build containers nest under the builder's own cgroup, so its limits hold for them.
        CgroupnsMode: "private",
        ...(p.builder_oci_runtime ? { Runtime: p.builder_oci_runtime } : {}),
      } as unknown as Docker.HostConfig, // CgroupnsMode is in the Engine API (1.41+) but not in the typings
    });
    try {
      await c.start();
    } catch (e) {
      await removeContainer(c.id);
      throw e;
    }
    return c.id;
  }

  /**
   * How a builder reaches the appliance's registry: an /etc/hosts entry mapping its name to the
   * builder network's gateway (this machine, where serve listens), and the appliance CA — in
   * the run dir for buildkitd's config, and for dockerd in /etc/docker/certs.d/<host:port>/.
   */
  async function registryAccess(networkId: string, runDir: string) {
    const { host, caPem } = deps.registry!;
    writeFileSync(join(runDir, REGISTRY_CA_FILE), caPem, { mode: 0o644 });
    const name = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    const net = (await docker.getNetwork(networkId).inspect()) as { IPAM?: { Config?: { Gateway?: string }[] } };
    const gateway = net.IPAM?.Config?.find((c) => c.Gateway && !c.Gateway.includes(":"))?.Gateway;
    const extraHosts = gateway && !isIP(name) ? [`${name}:${gateway}`] : [];
    const mounts = deps.runtime === "dockerd" ? [...new Set([host, ...(deps.registry!.aliases ?? [])])].map((h) => ({ Type: "bind", Source: join(runDir, REGISTRY_CA_FILE), Target: `/etc/docker/certs.d/${h}/ca.crt`, ReadOnly: true })) : [];
    return { extraHosts, mounts };
  }

  async function start(ref: BuilderRef, emulated: boolean): Promise<ReadyBuilder> {
    const stored = project(ref.projectId);
    if (!stored) throw new NotFoundError(`project ${ref.projectId} not found`);
    // Settings above a quota lowered since they were set stay stored; the builder gets the quota.
    const p = deps.quotas ? cappedSettings(stored, deps.quotas.limits(stored.org_id)) : stored;
    assertFiltered();
    let image: { Id: string };
    try {
      image = (await docker.getImage(deps.image).inspect()) as { Id: string };
      currency.learned(image.Id);
    } catch (e) {
      if (isNotFound(e)) throw new PreconditionError(`builder image ${deps.image} (runtime ${deps.runtime}) is not present on the Docker engine; run \`slipway builder-image build\` or \`slipway builder-image import FILE.tar\``);
      throw e;
    }
    const t = now().toISOString();
    let b = row(ref);
    if (!b) {
      db.query(`INSERT INTO builders (id, project_id, platform, runtime, state, updated_at) VALUES (?, ?, ?, ?, 'absent', ?)`).run(newId("bldr"), ref.projectId, ref.platform, deps.runtime, t);
      b = row(ref)!;
    }
    const dir = socketDir(b.id);
    const socketPath = join(dir, spec.socketName);
    setState(b.id, "starting", { runtime: deps.runtime, image: deps.image, image_id: image.Id, started_at: t, last_error: null, emulated: emulated ? 1 : 0, container_name: containerName(ref), socket_path: socketPath });
    let containerId: string | null = null;
    try {
      const volume = await deps.volumes.ensure(ref, p.cache_size_gb * 1024 ** 3);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const run = spec.container({ cacheSizeBytes: Math.min(volume.sizeBytes ?? Infinity, p.cache_size_gb * 1024 ** 3), keepDays: p.cache_keep_days, maxParallelism: Math.max(1, p.builder_cpus), insecureRegistries: deps.insecureRegistries, containerdStore: deps.containerdStore, ...(deps.registry ? { registryCaHost: deps.registry.host, registryCaAliases: deps.registry.aliases ?? [] } : {}) });
      for (const [name, content] of Object.entries(run.files)) writeFileSync(join(dir, name), content, { mode: 0o600 });
      let networkId = await ensureNetwork(p);
      let profile: SecurityProfileName = privilegedRefused ? "fallback" : "privileged";
      const create = async () => {
        try {
          return await createAndStart({ ...b, platform: ref.platform }, p, networkId, image.Id, volume.path, profile, run);
        } catch (e) {
          // The project's other builder stopped meanwhile and removed the network with it.
          if (!/network .* not found/i.test(String((e as Error).message))) throw e;
          networkId = await ensureNetwork(p);
          return await createAndStart({ ...b, platform: ref.platform }, p, networkId, image.Id, volume.path, profile, run);
        }
      };
      try {
        containerId = await create();
      } catch (e) {
        if (profile !== "privileged" || !isPrivilegeRefusal(e)) throw e;
        privilegedRefused = true;
        profile = "fallback";
        log.warn("the Docker engine refused a privileged builder; using the fallback profile (all capabilities but SYS_RESOURCE, seccomp and apparmor unconfined)", { error: (e as Error).message });
        containerId = await create();
      }
      setState(b.id, "starting", { container_id: containerId, network_id: networkId, security_profile: profile, oci_runtime: p.builder_oci_runtime });
      currency.track(b.id, { image: deps.image, imageId: image.Id, settings: currency.wanted().settings });
      const workers = await waitReady({ docker, runtime: deps.runtime, timeoutMs: readyTimeoutMs, stopping: () => closed }, socketPath, containerId);
      // An emulated builder runs the native image; its BuildKit lists the platforms it can run
      // (native plus what binfmt_misc handles, probed at its start). The solver refuses others.
      if (emulated && !workers.some((w) => w.platforms.some((x) => normalizePlatform(x) === ref.platform))) {
        throw new BuilderUnavailableError(
          `the builder's BuildKit cannot run ${ref.platform} (its workers offer ${[...new Set(workers.flatMap((w) => w.platforms))].join(", ") || "no platform"}); check the qemu binfmt handler with slipway doctor`,
        );
      }
      setState(b.id, "ready", { ready_at: now().toISOString(), last_used_at: now().toISOString() });
      await learnAddress(b.id, containerId);
      log.info("builder ready", { builder: b.id, project: ref.projectId, platform: ref.platform, runtime: deps.runtime, profile, encryption: deps.volumes.encryption });
      return toReady(row(ref)!);
    } catch (e) {
      if (containerId) await removeContainer(containerId).catch(() => {});
      currency.untrack(b.id);
      setState(b.id, "absent", { container_id: null, last_error: (e as Error).message.slice(0, 1000) });
      // Nothing half-made stays: the socket directory, the open volume, the network made for it.
      rmSync(dir, { recursive: true, force: true });
      await deps.volumes.close(ref).catch((x) => log.warn("closing the cache volume of a failed builder failed", { builder: b.id, error: (x as Error).message }));
      await removeNetworkIfUnused(ref.projectId, key(ref));
      log.warn("builder failed to start", { builder: b.id, project: ref.projectId, platform: ref.platform, error: (e as Error).message });
      throw e instanceof SlipwayError ? e : new BuilderUnavailableError(`builder failed to start: ${(e as Error).message}`);
    }
  }

  /**
   * Admission. Every builder that is not absent holds a slot (idle ones too: they keep their
   * network), and so does a start in flight. A builder may start when its organization runs fewer
   * than its max_running_builders and the host fewer than maxRunning. Otherwise its request waits
   * here, polled by the client (GetBuildKitConnection answers pending): free slots go first to the
   * organization running the fewest builders, first come first served within one, so a busy
   * tenant cannot starve the others. A waiting request stops an idle builder (least recently
   * used: its own organization's when that is at its quota, anyone's when the host is full)
   * instead of waiting for its idle timeout; one that waited past queueTimeoutMs is refused.
   */
  interface Waiter {
    orgId: string;
    since: number;
    polled: number;
  }
  const waiters = new Map<string, Waiter>();
  /** Builds (holders) refused after waiting: the depot CLI asks twice, the second ask is refused at once. */
  const refusedHolders = new Map<string, SlipwayError>();
  const maxRunning = deps.maxRunning ?? Number.POSITIVE_INFINITY;
  const queueTimeoutMs = deps.queueTimeoutMs ?? 300_000;
  /** A waiter whose client stopped asking (GetBuildKitConnection every second) gives its turn up. */
  const STALE_WAITER_MS = 15_000;
  let reclaiming = false;
  const orgLimit = (orgId: string) => deps.quotas?.limits(orgId).max_running_builders ?? Number.POSITIVE_INFINITY;
  const orgOfProject = (projectId: string) => (db.query("SELECT org_id FROM projects WHERE id = ?").get(projectId) as { org_id: string } | null)?.org_id ?? null;

  /** Builder key → organization, for every builder holding a slot. */
  function occupancy(): Map<string, string> {
    const occ = new Map<string, string>();
    const rows = db.query("SELECT b.project_id, b.platform, p.org_id FROM builders b JOIN projects p ON p.id = b.project_id WHERE b.state != 'absent'").all() as { project_id: string; platform: string; org_id: string }[];
    for (const r of rows) occ.set(key({ projectId: r.project_id, platform: r.platform }), r.org_id);
    for (const k of starting.keys()) {
      const org = occ.has(k) ? null : orgOfProject(k.split("|")[0]!);
      if (org) occ.set(k, org);
    }
    return occ;
  }
  const countBy = (occ: Map<string, string>) => {
    const used = new Map<string, number>();
    for (const o of occ.values()) used.set(o, (used.get(o) ?? 0) + 1);
    return used;
  };

  /** The least recently used idle builder (of one organization, or any) nobody holds. */
  function idleBuilder(orgId: string | null): BuilderRow | null {
    const rows = db.query("SELECT b.* FROM builders b JOIN projects p ON p.id = b.project_id WHERE b.state = 'idle' AND (?1 IS NULL OR p.org_id = ?1) ORDER BY b.last_used_at").all(orgId) as BuilderRow[];
    return rows.find((b) => {
      const k = key({ projectId: b.project_id, platform: b.platform });
      return !starting.has(k) && (holders.get(k)?.size ?? 0) === 0;
    }) ?? null;
  }

  function reclaimIdle(orgId: string | null) {
    if (reclaiming) return;
    const b = idleBuilder(orgId);
    if (!b) return;
    reclaiming = true;
    const ref = { projectId: b.project_id, platform: b.platform };
    log.info("stopping an idle builder to make room for a waiting build", { builder: b.id, project: b.project_id, platform: b.platform });
    void stopBuilder(ref, "room for a waiting build")
      .catch((e) => log.warn("stopping an idle builder failed", { builder: b.id, error: (e as Error).message }))
      .finally(() => (reclaiming = false));
  }

  /** Whether the builder `ref` (not running) may start now; otherwise it waits in line. */
  function admit(ref: BuilderRef, orgId: string, holder: string): boolean {
    const refused = refusedHolders.get(holder);
    if (refused) throw refused;
    const k = key(ref);
    const t = now().getTime();
    for (const [wk, w] of waiters) if (t - w.polled > STALE_WAITER_MS || (holders.get(wk)?.size ?? 0) === 0) waiters.delete(wk);
    const limit = orgLimit(orgId);
    if (limit === 0) throw new QuotaExceededError("the organization's quota max_running_builders is 0: it may run no builder; ask the administrator to raise it", "max_running_builders", 0, 0);
    const occ = occupancy();
    const used = countBy(occ);
    let w = waiters.get(k);
    if (!w) {
      waiters.set(k, (w = { orgId, since: t, polled: t }));
    }
    w.polled = t;
    // Hand out the free slots in fair order, as if every waiter asked now.
    const taken = new Map(used);
    const line = new Map(waiters);
    for (let room = maxRunning - occ.size; room > 0 && line.size > 0; room--) {
      let next: [string, Waiter] | null = null;
      for (const e of line) {
        const n = taken.get(e[1].orgId) ?? 0;
        if (n >= orgLimit(e[1].orgId)) continue;
        if (!next || n < (taken.get(next[1].orgId) ?? 0) || (n === (taken.get(next[1].orgId) ?? 0) && e[1].since < next[1].since)) next = e;
      }
      if (!next) break;
      if (next[0] === k) {
        waiters.delete(k);
        return true;
      }
      line.delete(next[0]);
      taken.set(next[1].orgId, (taken.get(next[1].orgId) ?? 0) + 1);
    }
    const orgFull = (used.get(orgId) ?? 0) >= limit;
    if (orgFull) reclaimIdle(orgId);
    else if (occ.size >= maxRunning) reclaimIdle(null);
    const waited = t - w.since;
    if (waited === 0) log.info("a build waits for a builder slot", { project: ref.projectId, platform: ref.platform, org: orgId, org_running: used.get(orgId) ?? 0, org_limit: limit, host_running: occ.size, host_limit: maxRunning });
    if (waited >= queueTimeoutMs) {
      waiters.delete(k);
      const s = Math.round(waited / 1000);
      const refusal = orgFull
        ? new QuotaExceededError(`no builder after waiting ${s} s: the organization runs ${used.get(orgId) ?? 0} builder(s), its quota max_running_builders is ${limit}; try again when one of its builds has ended, or ask the administrator to raise the quota`, "max_running_builders", limit, used.get(orgId) ?? 0)
        : new ResourceExhaustedError(`no builder after waiting ${s} s: this host runs ${occ.size} builder(s), its limit builders.max_running is ${maxRunning}; try again later`);
      refusedHolders.set(holder, refusal);
      log.info("a build waited too long for a builder slot", { project: ref.projectId, platform: ref.platform, build: holder, waited_ms: waited });
      throw refusal;
    }
    return false;
  }

  function releaseHolds(holder: string) {
    for (const [k, s] of holders) {
      if (!s.delete(holder) || s.size > 0) continue;
      const [projectId, platform] = k.split("|") as [string, string];
      scheduleIdle({ projectId, platform });
    }
  }

  function hold(k: string, holder: string) {
    let s = holders.get(k);
    if (!s) holders.set(k, (s = new Set()));
    s.add(holder);
    const t = idleTimers.get(k);
    if (t) (clearTimeout(t), idleTimers.delete(k));
  }

  /** Starts the builder unless it runs or is starting; one container whatever the concurrency.
   * `before` runs first under the same promise (an upgrade's stop), so requests wait for both. */
  function startOnce(ref: BuilderRef, emulated: boolean, before?: () => Promise<void>): Promise<ReadyBuilder> {
    const k = key(ref);
    let p = starting.get(k);
    if (!p) {
      failures.delete(k);
      p = (before ? before().then(() => start(ref, emulated)) : start(ref, emulated)).finally(() => starting.delete(k));
      p.then(
        () => scheduleIdle(ref),
        (e: Error) => failures.set(k, { error: e.message, holders: new Set(holders.get(k)) }),
      );
      starting.set(k, p);
    }
    return p;
  }

  /** The row of a builder that runs and is not (re)starting, or null. */
  function currentRow(ref: BuilderRef): BuilderRow | null {
    if (starting.has(key(ref))) return null;
    const b = row(ref);
    return b && (b.state === "ready" || b.state === "idle") && b.container_id && b.socket_path ? b : null;
  }

  function current(ref: BuilderRef): ReadyBuilder | null {
    const b = currentRow(ref);
    return b ? toReady(b) : null;
  }

  /** An idle builder becomes ready; a ready one is written again only once a second (a write per
   * build admission was a third of the admission's commits). `b` is its row as just read. */
  function markUsed(b: Pick<BuilderRow, "id" | "state" | "last_used_at">) {
    const t = now();
    if (b.state === "ready" && b.last_used_at && t.getTime() - Date.parse(b.last_used_at) < 1000) return;
    db.query("UPDATE builders SET state = 'ready', last_used_at = ?, updated_at = ? WHERE id = ? AND state IN ('ready', 'idle')").run(t.toISOString(), t.toISOString(), b.id);
  }

  function scheduleIdle(ref: BuilderRef) {
    const k = key(ref);
    if ((holders.get(k)?.size ?? 0) > 0 || closed) return;
    const b = row(ref);
    if (!b || (b.state !== "ready" && b.state !== "idle") || upgradeIfIdle(ref, b)) return;
    setState(b.id, "idle");
    const p = project(ref.projectId);
    const ms = deps.idleTimeoutMs?.(ref.projectId) ?? (p?.builder_idle_timeout_seconds ?? 300) * 1000;
    const old = idleTimers.get(k);
    if (old) clearTimeout(old);
    const timer = setTimeout(() => {
      idleTimers.delete(k);
      if ((holders.get(k)?.size ?? 0) > 0 || starting.has(k)) return;
      void stopBuilder(ref, "idle").catch((e) => log.warn("idle stop failed", { project: ref.projectId, platform: ref.platform, error: (e as Error).message }));
    }, ms);
    timer.unref?.();
    idleTimers.set(k, timer);
  }

  /**
   * A builder nobody holds, running an image or settings other than the configured ones, is
   * recreated: stopped and started again on the same cache volume, under `starting` so that a
   * request meanwhile waits for the new container. Never while a build holds it.
   */
  function upgradeIfIdle(ref: BuilderRef, b: BuilderRow): boolean {
    const k = key(ref);
    if (!upgrading || closed || starting.has(k) || (holders.get(k)?.size ?? 0) > 0 || !currency.difference(b.id)) return false;
    log.info("recreating an idle builder on the configured image", { builder: b.id, project: ref.projectId, platform: ref.platform, from: b.image_id, to: currency.wanted().imageId });
    startOnce(ref, b.emulated === 1, () => stopBuilder(ref, "image upgrade")).catch(() => {});
    return true;
  }

  /** Every idle builder on an old image is recreated (the image changed, or watching began). */
  function upgradeIdle() {
    for (const b of db.query("SELECT * FROM builders WHERE state IN ('ready', 'idle')").all() as BuilderRow[]) upgradeIfIdle({ projectId: b.project_id, platform: b.platform }, b);
  }

  async function stopBuilder(ref: BuilderRef, reason: string): Promise<void> {
    const b = row(ref);
    if (!b || b.state === "absent") return;
    const t = idleTimers.get(key(ref));
    if (t) (clearTimeout(t), idleTimers.delete(key(ref)));
    setState(b.id, "stopping");
    if (b.container_id) {
      expectedDeaths.add(b.container_id);
      try {
        await docker.getContainer(b.container_id).stop({ t: 10 });
      } catch (e) {
        if (!isNotFound(e) && !/is not running|already stopped/i.test(String((e as Error).message))) log.warn("builder stop failed; removing it", { builder: b.id, error: (e as Error).message });
      }
      await removeContainer(b.container_id);
    }
    forgetAddress(b.id);
    currency.untrack(b.id);
    await deps.volumes.close(ref);
    rmSync(socketDir(b.id), { recursive: true, force: true });
    setState(b.id, "absent", { container_id: null });
    await removeNetworkIfUnused(ref.projectId);
    log.info("builder stopped", { builder: b.id, project: ref.projectId, platform: ref.platform, reason });
  }

  /** A container of ours died: forget it so the next request starts a fresh one. */
  function onContainerGone(containerId: string, reason: string) {
    if (expectedDeaths.delete(containerId)) return;
    const b = db.query("SELECT * FROM builders WHERE container_id = ?").get(containerId) as BuilderRow | null;
    if (!b || b.state === "absent" || b.state === "stopping") return;
    const ref = { projectId: b.project_id, platform: b.platform };
    // Dying before it was ready fails its start, which says why (exit code, last log lines).
    if (b.state === "starting") return;
    setState(b.id, "absent", { container_id: null, last_error: `container ${reason}` });
    forgetAddress(b.id);
    currency.untrack(b.id);
    rmSync(socketDir(b.id), { recursive: true, force: true });
    void removeContainer(containerId).catch(() => {});
    const held = [...(holders.get(key(ref)) ?? [])];
    log.warn("builder container died", { builder: b.id, project: b.project_id, platform: b.platform, reason, builds: held.length });
    deps.onBuilderLost?.({ ...ref, builderId: b.id, holders: held, reason });
  }

  return {
    /**
     * Non-blocking: the builder's state for `holder` (a build id), starting it if needed. The
     * holder keeps the builder from idling until release(holder).
     */
    async request(ref: BuilderRef, holder: string): Promise<BuilderStatus> {
      const { platform, emulated } = await resolvePlatform(ref.platform);
      const r = { projectId: ref.projectId, platform };
      const k = key(r);
      hold(k, holder);
      const b = currentRow(r);
      if (b) {
        markUsed(b);
        return { state: "ready", builder: toReady(b) };
      }
      const failed = starting.has(k) ? undefined : failures.get(k);
      if (failed?.holders.delete(holder)) {
        if (failed.holders.size === 0) failures.delete(k); // the next request tries again
        return { state: "failed", error: failed.error };
      }
      if (!starting.has(k)) {
        const orgId = orgOfProject(r.projectId);
        if (!orgId) throw new NotFoundError(`project ${r.projectId} not found`);
        try {
          if (!admit(r, orgId, holder)) return { state: "starting" }; // waiting in line: the client polls
        } catch (e) {
          releaseHolds(holder); // its refusal stays remembered until the build ends (release)
          throw e;
        }
      }
      startOnce(r, emulated).catch(() => {});
      return { state: "starting" };
    },

    /** Blocking: waits until the builder is ready (starting it if needed) and holds it. */
    async acquire(ref: BuilderRef, holder: string): Promise<ReadyBuilder> {
      const { platform, emulated } = await resolvePlatform(ref.platform);
      const r = { projectId: ref.projectId, platform };
      hold(key(r), holder);
      try {
        const b = currentRow(r);
        if (!b) {
          const orgId = orgOfProject(r.projectId);
          if (!orgId) throw new NotFoundError(`project ${r.projectId} not found`);
          // In line like request()'s callers, polling as they do.
          while (!starting.has(key(r)) && currentRow(r) === null && !admit(r, orgId, holder)) await new Promise((done) => setTimeout(done, 1000));
          const meanwhile = currentRow(r);
          if (meanwhile) return (markUsed(meanwhile), toReady(meanwhile));
          return await startOnce(r, emulated); // a start leaves it ready, just used
        }
        markUsed(b);
        return toReady(b);
      } catch (e) {
        this.release(holder);
        throw e;
      }
    },

    /**
     * CreateBuild's early answer: a build whose organization already runs as many builders as
     * its quota allows, none of them idle nor its project's, is refused before it is made.
     */
    admissible(orgId: string, projectId: string): void {
      const limit = orgLimit(orgId);
      const occ = occupancy();
      if (limit > 0 && [...occ.keys()].some((k) => k.startsWith(`${projectId}|`))) return;
      const used = countBy(occ).get(orgId) ?? 0;
      if (used < limit || (limit > 0 && idleBuilder(orgId))) return;
      throw new QuotaExceededError(
        `the organization runs ${used} builder(s) for builds in progress and its quota max_running_builders is ${limit}: try again when one of its builds has ended, or ask the administrator to raise the quota`,
        "max_running_builders",
        limit,
        used,
      );
    },

    /** The holder is done with every builder it held; builders left with none go idle. */
    release(holder: string): void {
      refusedHolders.delete(holder);
      for (const [k, f] of failures) if (f.holders.delete(holder) && f.holders.size === 0) failures.delete(k);
      releaseHolds(holder);
    },

    /**
     * Emulation of the other depot platform (arm64 on an amd64 engine, amd64 on an arm64 one):
     * whether the operator enabled it and whether this host's binfmt handler can serve it.
     */
    async emulation(): Promise<EmulationStatus> {
      const native = await engineNativePlatform().catch(() => (process.arch === "arm64" ? "linux/arm64" : "linux/amd64"));
      return emulationStatus(native === "linux/arm64" ? "linux/amd64" : "linux/arm64", deps.allowEmulation ?? false, deps.binfmtDir);
    },

    /** The ready builder for a route, or null (router lookup). */
    ready(ref: BuilderRef): ReadyBuilder | null {
      const platform = normalizePlatform(ref.platform);
      return platform ? current({ projectId: ref.projectId, platform }) : null;
    },

    /** Builders that run now (after reconcile: the adopted ones), as volume refs. */
    running(): BuilderRef[] {
      return (db.query("SELECT project_id, platform FROM builders WHERE state IN ('starting', 'ready', 'idle')").all() as { project_id: string; platform: string }[]).map((r) => ({ projectId: r.project_id, platform: r.platform }));
    },

    list(projectId: string): BuilderRow[] {
      return db.query("SELECT * FROM builders WHERE project_id = ? ORDER BY platform").all(projectId) as BuilderRow[];
    },

    /** Running builders (of one project, or all) on an image or settings other than the configured ones. */
    outdated(projectId?: string): OutdatedBuilder[] {
      const rows = db.query("SELECT * FROM builders WHERE state != 'absent' AND (?1 IS NULL OR project_id = ?1) ORDER BY project_id, platform").all(projectId ?? null) as BuilderRow[];
      return currency.outdated(rows);
    },

    stop: stopBuilder,

    /** Stops every builder of the project, crypto-erases/empties its volumes; next build starts cold. */
    async resetCache(projectId: string): Promise<{ platforms: string[] }> {
      const rows = this.list(projectId);
      const platforms = rows.map((b) => b.platform); // one row per (project, platform)
      for (const platform of platforms) {
        await stopBuilder({ projectId, platform }, "cache reset");
        await deps.volumes.reset({ projectId, platform });
      }
      return { platforms };
    },

    /** A project is being deleted: its builders stop and their cache volumes are deleted (crypto-erased). */
    async releaseProject(projectId: string): Promise<void> {
      for (const { platform } of this.list(projectId)) {
        await stopBuilder({ projectId, platform }, "project deleted");
        await deps.volumes.delete({ projectId, platform });
      }
    },

    async cacheUsage(projectId: string): Promise<{ platform: string; usage: VolumeUsage | null; encryption: string }[]> {
      const out = [];
      for (const b of this.list(projectId)) out.push({ platform: b.platform, usage: await deps.volumes.usage({ projectId, platform: b.platform }), encryption: deps.volumes.encryption });
      return out;
    },

    /**
     * On serve start: adopt running builders the database knows (ready if BuildKit answers),
     * remove labelled containers it does not, forget builders whose container vanished.
     * Returns what it did, for the log and the tests.
     */
    async reconcile(): Promise<{ adopted: string[]; removed: string[]; lost: { builderId: string; projectId: string; platform: string }[] }> {
      await currency.refresh();
      const containers = (await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.appliance}=${deps.applianceId}`] }) })) as { Id: string; ImageID: string; State: string; Labels: Record<string, string> }[];
      const byId = new Map(containers.map((c) => [c.Id, c]));
      const adopted: string[] = [];
      const removed: string[] = [];
      const lost: { builderId: string; projectId: string; platform: string }[] = [];
      const rows = db.query("SELECT * FROM builders WHERE state != 'absent'").all() as BuilderRow[];
      const keep = new Set<string>();
      for (const b of rows) {
        const c = b.container_id ? byId.get(b.container_id) : undefined;
        const ref = { projectId: b.project_id, platform: b.platform };
        let ok = false;
        // A builder on a network the policy does not filter (from before it) is not adopted.
        if (c && c.State === "running" && b.socket_path && b.runtime === deps.runtime && (await onPolicyBridge(b.network_id))) {
          try {
            await listWorkersAt(b.socket_path, b.runtime, 5000);
            ok = true;
          } catch {
            ok = false;
          }
        }
        if (ok) {
          keep.add(c!.Id);
          // What it runs is the container's own image; settings from before they were labelled count as old.
          currency.track(b.id, { image: b.image, imageId: c!.ImageID, settings: c!.Labels[LABEL.settings] ?? null });
          setState(b.id, "idle", { image_id: c!.ImageID });
          adopted.push(b.id);
          await learnAddress(b.id, c!.Id);
          scheduleIdle(ref);
        } else {
          if (c) await removeContainer(c.Id);
          rmSync(socketDir(b.id), { recursive: true, force: true });
          setState(b.id, "absent", { container_id: null, last_error: "not running when serve started" });
          lost.push({ builderId: b.id, ...ref });
        }
      }
      // Labelled containers no builder row accounts for: orphans.
      const known = new Set(rows.map((b) => b.container_id));
      for (const c of containers) {
        if (known.has(c.Id)) continue;
        await removeContainer(c.Id);
        removed.push(c.Id);
      }
      // Networks of projects with no running builder: left by a crash, or by a builder that died.
      const networks = (await docker.listNetworks({ filters: JSON.stringify({ label: [`${LABEL.appliance}=${deps.applianceId}`] }) })) as { Labels?: Record<string, string> }[];
      for (const n of networks) {
        const projectId = n.Labels?.[LABEL.project];
        if (projectId) await removeNetworkIfUnused(projectId);
      }
      return { adopted, removed, lost };
    },

    /**
     * Follows Docker events so a builder that dies is noticed at once, and the configured image's
     * so idle builders on an old one are recreated; starts that with the builders adopted now.
     */
    async watch(): Promise<void> {
      await currency.watch();
      upgrading = true;
      upgradeIdle();
      const stream = (await docker.getEvents({ filters: JSON.stringify({ type: ["container"], event: ["die", "destroy", "oom"], label: [`${LABEL.appliance}=${deps.applianceId}`] }) })) as unknown as Readable;
      events = stream;
      let buf = "";
      stream.on("data", (chunk: Buffer) => {
        buf += chunk.toString("utf8");
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            const ev = JSON.parse(line) as { id?: string; Action?: string; status?: string };
            if (ev.id) onContainerGone(ev.id, ev.Action ?? ev.status ?? "died");
          } catch {
            // a partial line: wait for more
          }
        }
      });
      stream.on("error", () => {});
    },

    /** Stops timers and the event stream. Builders keep running: the next serve adopts them. */
    close(): void {
      closed = true;
      for (const t of idleTimers.values()) clearTimeout(t);
      idleTimers.clear();
      events?.destroy();
      currency.close();
    },
  };
}

export type BuilderManager = ReturnType<typeof builderManagerFactory>;

function isNotFound(e: unknown): boolean {
  return (e as { statusCode?: number })?.statusCode === 404;
}
