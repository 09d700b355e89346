/**
 * @module builders/service
 * The builder life cycle: one BuildKit container per (project, platform) on the local Docker
 * engine, started when a build asks for it, shared by that project's concurrent builds, stopped
 * when idle, noticed when lost, adopted after a restart, recreated when its image changes. Its
 * states (absent → starting → ready ⇄ idle → stopping → absent) are kept in the `builders` table
 * (store.ts) so a restarted serve adopts what still runs. The steps with their own files: the
 * engine's side (engine.ts), one start (start.ts), who may start when slots are short
 * (admission.ts), what a restarted serve adopts (reconcile.ts), the addresses runners may reach
 * (addresses.ts).
 *
 * Builders start only within their organization's max_running_builders quota and the host's
 * cap: otherwise the request waits in a fair line, bounded in time. A caller told `starting`
 * waits on whenChanged() — woken when the start settles or a slot frees — rather than polling.
 */
import type { Database } from "bun:sqlite";
import type Docker from "dockerode";
import { rmSync } from "node:fs";
import type { Readable } from "node:stream";
import { InvalidInputError, NotFoundError, PreconditionError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { QuotasService } from "../orgs/quotas.ts";
import type { BuilderRuntime } from "../router/index.ts";
import type { VolumeManager, VolumeUsage } from "../volumes/index.ts";
import { builderAdmissionFactory } from "./admission.ts";
import { builderSettingsKey, imageCurrencyFactory, type OutdatedBuilder } from "./currency.ts";
import { emulationProblem, emulationStatus, type EmulationStatus } from "./emulation.ts";
import { builderAddressesFactory } from "./addresses.ts";
import { builderEngineFactory } from "./engine.ts";
import { enginePrivilegesFactory } from "./engine-privileges.ts";
import type { PolicyNames } from "./network-policy.ts";
import { BuilderUnavailableError } from "./readiness.ts";
import { reconcileBuilders, type Reconciled } from "./reconcile.ts";
import { normalizePlatform } from "./runtimes.ts";
import { builderStartFactory } from "./start.ts";
import { builderStoreFactory } from "./store.ts";
import {
  builderKey as key,
  toReady,
  type BuilderOrgs,
  type BuilderProjects,
  type BuilderRef,
  type BuilderRow,
  type BuilderStatus,
  type ReadyBuilder,
} from "./types.ts";

export { BuilderUnavailableError };

export interface BuilderServiceDeps {
  db: Database;
  docker: Docker;
  volumes: Pick<VolumeManager, "ensure" | "close" | "reset" | "delete" | "usage" | "encryption">;
  /** The projects' settings and organizations (the projects service owns them). */
  projects: Pick<BuilderProjects, "builderSettings" | "orgsOf">;
  /** The organizations' OCI runtime for builders (the organizations service owns it). */
  orgs: Pick<BuilderOrgs, "builderRuntime">;
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

export type BuilderService = ReturnType<typeof builderServiceFactory>;

/** The watchers' key for requests waiting in the admission line: any freed slot may be theirs. */
const LINE = "";

// The life cycle's shared state (holders, starts in flight, idle timers) is this closure's; each
// step is a short function of its own, and the factory's length is theirs.
export function builderServiceFactory(deps: BuilderServiceDeps) {
  const { docker, log } = deps;
  const now = deps.now ?? (() => new Date());
  const readyTimeoutMs = deps.readyTimeoutMs ?? 90_000;
  const store = builderStoreFactory({ db: deps.db, now });
  const engine = builderEngineFactory(deps);

  /** Builds holding each builder (by key); a builder with none is idle. */
  const holders = new Map<string, Set<string>>();
  const starting = new Map<string, Promise<ReadyBuilder>>();
  /** A failed start's error, for the builds that were waiting on it: each is told once; a build
   * that came later starts the builder again rather than inheriting an old failure. */
  const failures = new Map<string, { error: string; holders: Set<string> }>();
  const idleTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Who waits for a builder to change (whenChanged): by builder key, or LINE for a free slot. */
  const watchers = new Map<string, Set<() => void>>();
  let events: Readable | null = null;
  let closed = false;
  /** Idle builders on an old image are recreated only once watch() runs (after serve reconciled volumes). */
  let upgrading = false;
  const currency = imageCurrencyFactory({
    docker,
    image: deps.image,
    settings: builderSettingsKey({
      runtime: deps.runtime,
      containerdStore: deps.containerdStore,
      insecureRegistries: deps.insecureRegistries,
    }),
    log,
    refreshMs: deps.imageRefreshMs,
    onChange: () => upgradeIdle(),
  });
  /** Wakes the waiters on `k` (each is woken once; it asks again and waits anew if it must). */
  const notify = (k: string) => {
    const woken = watchers.get(k);
    watchers.delete(k);
    for (const wake of woken ?? []) wake();
  };
  const held = (k: string) => (holders.get(k)?.size ?? 0) > 0;
  const orgOfProject = (projectId: string) => deps.projects.builderSettings(projectId)?.org_id ?? null;
  const addresses = builderAddressesFactory({ engine, log, onAddresses: deps.onAddresses });
  const start = builderStartFactory({
    ...deps,
    engine,
    store,
    privileges: enginePrivilegesFactory({ db: deps.db, now }),
    currency,
    readyTimeoutMs,
    now,
    closing: () => closed,
    learnAddress: addresses.learn,
    removeNetworkIfUnused,
  });
  const admission = builderAdmissionFactory({
    store,
    orgsOf: (projectIds) => deps.projects.orgsOf(projectIds),
    quotas: deps.quotas,
    maxRunning: deps.maxRunning,
    queueTimeoutMs: deps.queueTimeoutMs,
    starting,
    held,
    stop: (ref, reason) => stopBuilder(ref, reason),
    log,
    now,
  });

  /** Validates a platform for this host: native, or emulated when allowed and registered. */
  async function resolvePlatform(input: string): Promise<{ platform: string; emulated: boolean }> {
    const platform = normalizePlatform(input);
    if (!platform)
      throw new InvalidInputError(`unknown platform ${JSON.stringify(input)}`, [
        { pointer: "/platform", detail: "expected linux/amd64, linux/arm64, ..." },
      ]);
    const native = await engine.nativePlatform();
    if (platform === native) return { platform, emulated: false };
    if (!deps.allowEmulation) {
      throw new PreconditionError(
        `platform ${platform} is not this host's (${native}) and QEMU emulation is off; an operator can enable it with builders.allow_emulation = true (SLIPWAY_BUILDERS_ALLOW_EMULATION=true) once qemu-user-static is installed on the Docker host`,
      );
    }
    const problem = emulationProblem(platform, deps.binfmtDir);
    if (problem)
      throw new PreconditionError(
        `platform ${platform} needs QEMU emulation on this host (builders.allow_emulation is on), but ${problem}`,
      );
    return { platform, emulated: true };
  }

  /**
   * Removes the project's network once none of its builders runs. Networks exist only beside
   * running builders: Docker's default address pools hold about 30 bridge networks, so one per
   * project for good would stop an appliance with more projects than that from starting builders.
   * A network that still has a container attached (a start racing this) is left alone.
   */
  async function removeNetworkIfUnused(projectId: string, except?: string) {
    if (store.projectBusy(projectId) || [...starting.keys()].some((k) => k !== except && k.startsWith(`${projectId}|`)))
      return;
    await engine.removeNetwork(projectId);
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
    if (t) {
      clearTimeout(t);
      idleTimers.delete(k);
    }
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
        () => {
          scheduleIdle(ref);
          notify(k);
        },
        (e: Error) => {
          failures.set(k, { error: e.message, holders: new Set(holders.get(k)) });
          notify(k);
          notify(LINE); // a failed start frees its slot
        },
      );
      starting.set(k, p);
    }
    return p;
  }

  /** The row of a builder that runs and is not (re)starting, or null. */
  function currentRow(ref: BuilderRef): BuilderRow | null {
    if (starting.has(key(ref))) return null;
    const b = store.get(ref);
    return b && (b.state === "ready" || b.state === "idle") && b.container_id && b.socket_path ? b : null;
  }

  function scheduleIdle(ref: BuilderRef) {
    const k = key(ref);
    if (held(k) || closed) return;
    const b = store.get(ref);
    if (!b || (b.state !== "ready" && b.state !== "idle") || upgradeIfIdle(ref, b)) return;
    store.setState(b.id, "idle");
    const p = deps.projects.builderSettings(ref.projectId);
    const ms = deps.idleTimeoutMs?.(ref.projectId) ?? (p?.builder_idle_timeout_seconds ?? 300) * 1000;
    const old = idleTimers.get(k);
    if (old) clearTimeout(old);
    const timer = setTimeout(() => {
      idleTimers.delete(k);
      if (held(k) || starting.has(k)) return;
      void stopBuilder(ref, "idle").catch((e) =>
        log.warn("idle stop failed", { project: ref.projectId, platform: ref.platform, error: (e as Error).message }),
      );
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
    if (!upgrading || closed || starting.has(k) || held(k) || !currency.difference(b.id)) return false;
    log.info("recreating an idle builder on the configured image", {
      builder: b.id,
      project: ref.projectId,
      platform: ref.platform,
      from: b.image_id,
      to: currency.wanted().imageId,
    });
    startOnce(ref, b.emulated === 1, () => stopBuilder(ref, "image upgrade")).catch(() => {});
    return true;
  }

  /** Every idle builder on an old image is recreated (the image changed, or watching began). */
  function upgradeIdle() {
    for (const b of store.up()) upgradeIfIdle({ projectId: b.project_id, platform: b.platform }, b);
  }

  async function stopBuilder(ref: BuilderRef, reason: string): Promise<void> {
    const b = store.get(ref);
    if (!b || b.state === "absent") return;
    const t = idleTimers.get(key(ref));
    if (t) {
      clearTimeout(t);
      idleTimers.delete(key(ref));
    }
    store.setState(b.id, "stopping");
    if (b.container_id) await engine.stopContainer(b.container_id, b.id);
    addresses.forget(b.id);
    currency.untrack(b.id);
    await deps.volumes.close(ref);
    rmSync(engine.socketDir(b.id), { recursive: true, force: true });
    store.setState(b.id, "absent", { container_id: null });
    notify(LINE);
    await removeNetworkIfUnused(ref.projectId);
    log.info("builder stopped", { builder: b.id, project: ref.projectId, platform: ref.platform, reason });
  }

  /** A container of ours died: forget it so the next request starts a fresh one. */
  function onContainerGone(containerId: string, reason: string) {
    if (engine.expectedDeath(containerId)) return;
    const b = store.byContainer(containerId);
    if (!b || b.state === "absent" || b.state === "stopping") return;
    const ref = { projectId: b.project_id, platform: b.platform };
    // Dying before it was ready fails its start, which says why (exit code, last log lines).
    if (b.state === "starting") return;
    store.setState(b.id, "absent", { container_id: null, last_error: `container ${reason}` });
    addresses.forget(b.id);
    currency.untrack(b.id);
    rmSync(engine.socketDir(b.id), { recursive: true, force: true });
    void engine.removeContainer(containerId).catch(() => {});
    notify(LINE);
    const holding = [...(holders.get(key(ref)) ?? [])];
    log.warn("builder container died", {
      builder: b.id,
      project: b.project_id,
      platform: b.platform,
      reason,
      builds: holding.length,
    });
    deps.onBuilderLost?.({ ...ref, builderId: b.id, holders: holding, reason });
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
        store.markUsed(b);
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
          if (!admission.admit(r, orgId, holder)) return { state: "starting" }; // waiting in line: the client polls
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
          // In line like request()'s callers: woken when a slot may have freed, asking again at
          // least every 5 s (a waiter not heard from for 15 s loses its place).
          while (!starting.has(key(r)) && currentRow(r) === null && !admission.admit(r, orgId, holder))
            await this.whenChanged(r, AbortSignal.timeout(5000));
          const meanwhile = currentRow(r);
          if (meanwhile) {
            store.markUsed(meanwhile);
            return toReady(meanwhile);
          }
          return await startOnce(r, emulated); // a start leaves it ready, just used
        }
        store.markUsed(b);
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
      admission.admissible(orgId, projectId);
    },

    /** The holder is done with every builder it held; builders left with none go idle. */
    release(holder: string): void {
      admission.forget(holder);
      for (const [k, f] of failures) if (f.holders.delete(holder) && f.holders.size === 0) failures.delete(k);
      releaseHolds(holder);
      notify(LINE); // a waiter ahead in the line may have been this build's
    },

    /**
     * Resolves when what request() answers for `ref` may have changed — its start settled (ready
     * or failed), or, for a request waiting in the admission line, a slot may have freed — or
     * when `signal` aborts. Resolves at once when nothing is pending. A build's GetBuildKitConnection
     * waits on it between asks instead of polling (builds/service.ts).
     */
    whenChanged(ref: BuilderRef, signal: AbortSignal): Promise<void> {
      const r = { projectId: ref.projectId, platform: normalizePlatform(ref.platform) ?? ref.platform };
      const k = key(r);
      const on = starting.has(k)
        ? k
        : currentRow(r) || failures.has(k) || !admission.waiting(k) || closed
          ? null
          : LINE;
      if (on === null || signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        let waiting = watchers.get(on);
        if (!waiting) watchers.set(on, (waiting = new Set()));
        const wake = () => {
          waiting.delete(wake);
          if (waiting.size === 0 && watchers.get(on) === waiting) watchers.delete(on);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        waiting.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    },

    /** How many wait in whenChanged now (a hold that ended must leave none behind). */
    watcherCount(): number {
      let n = 0;
      for (const s of watchers.values()) n += s.size;
      return n;
    },

    /**
     * Emulation of the other depot platform (arm64 on an amd64 engine, amd64 on an arm64 one):
     * whether the operator enabled it and whether this host's binfmt handler can serve it.
     */
    async emulation(): Promise<EmulationStatus> {
      const native = await engine
        .nativePlatform()
        .catch(() => (process.arch === "arm64" ? "linux/arm64" : "linux/amd64"));
      return emulationStatus(
        native === "linux/arm64" ? "linux/amd64" : "linux/arm64",
        deps.allowEmulation ?? false,
        deps.binfmtDir,
      );
    },

    /** The ready builder for a route, or null (router lookup). */
    ready(ref: BuilderRef): ReadyBuilder | null {
      const platform = normalizePlatform(ref.platform);
      const b = platform ? currentRow({ projectId: ref.projectId, platform }) : null;
      return b ? toReady(b) : null;
    },

    /** Builders that run now (after reconcile: the adopted ones), as volume refs. */
    running(): BuilderRef[] {
      return store.running();
    },

    list(projectId: string): BuilderRow[] {
      return store.list(projectId);
    },

    /** Every builder of the appliance, whatever its project (the administrator's view). */
    all(): BuilderRow[] {
      return store.all();
    },

    /** Running builders (of one project, or all) on an image or settings other than the configured ones. */
    outdated(projectId?: string): OutdatedBuilder[] {
      return currency.outdated(store.activeOf(projectId));
    },

    stop: stopBuilder,

    /** Stops every builder of the project, crypto-erases/empties its volumes; next build starts cold. */
    async resetCache(projectId: string): Promise<{ platforms: string[] }> {
      const platforms = store.list(projectId).map((b) => b.platform); // one row per (project, platform)
      for (const platform of platforms) {
        await stopBuilder({ projectId, platform }, "cache reset");
        await deps.volumes.reset({ projectId, platform });
      }
      return { platforms };
    },

    /** A project is being deleted: its builders stop and their cache volumes are deleted (crypto-erased). */
    async releaseProject(projectId: string): Promise<void> {
      for (const { platform } of store.list(projectId)) {
        await stopBuilder({ projectId, platform }, "project deleted");
        await deps.volumes.delete({ projectId, platform });
      }
    },

    async cacheUsage(
      projectId: string,
    ): Promise<{ platform: string; usage: VolumeUsage | null; encryption: string }[]> {
      const out = [];
      for (const b of store.list(projectId))
        out.push({
          platform: b.platform,
          usage: await deps.volumes.usage({ projectId, platform: b.platform }),
          encryption: deps.volumes.encryption,
        });
      return out;
    },

    /**
     * On serve start: adopt running builders the database knows (ready if BuildKit answers),
     * remove labelled containers it does not, forget builders whose container vanished.
     * Returns what it did, for the log and the tests.
     */
    reconcile(): Promise<Reconciled> {
      return reconcileBuilders({
        engine,
        store,
        currency,
        runtime: deps.runtime,
        learnAddress: addresses.learn,
        scheduleIdle,
        removeNetworkIfUnused,
      });
    },

    /**
     * Follows Docker events so a builder that dies is noticed at once, and the configured image's
     * so idle builders on an old one are recreated; starts that with the builders adopted now.
     */
    async watch(): Promise<void> {
      await currency.watch();
      upgrading = true;
      upgradeIdle();
      events = await engine.watchDeaths(onContainerGone);
    },

    /** Stops timers and the event stream. Builders keep running: the next serve adopts them. */
    close(): void {
      closed = true;
      for (const k of [...watchers.keys()]) notify(k);
      for (const t of idleTimers.values()) clearTimeout(t);
      idleTimers.clear();
      events?.destroy();
      currency.close();
    },
  };
}
