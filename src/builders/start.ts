/**
 * @module builders/start
 * Starting one builder: its row to `starting`, its cache volume, its socket directory and
 * configuration files, its container on the project's network (privileged unless this engine
 * refused that before: remembered per engine across restarts, engine-privileges.ts), then ready when BuildKit answers. A failure on the way leaves nothing
 * half-made: no container, no socket directory, no open volume, no network made for it.
 */
import type Docker from "dockerode";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NotFoundError, SlipwayError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import { cappedSettings, type QuotasService } from "../orgs/quotas.ts";
import type { BuilderRuntime } from "../router/index.ts";
import type { VolumeManager } from "../volumes/index.ts";
import type { ImageCurrency } from "./currency.ts";
import type { BuilderContainer, BuilderEngine } from "./engine.ts";
import type { EnginePrivileges } from "./engine-privileges.ts";
import { BuilderUnavailableError, waitReady } from "./readiness.ts";
import { RUNTIMES, normalizePlatform } from "./runtimes.ts";
import { isPrivilegeRefusal, type SecurityProfileName } from "./security.ts";
import type { BuilderStore } from "./store.ts";
import {
  builderKey,
  toReady,
  type BuilderOrgs,
  type BuilderProject,
  type BuilderProjects,
  type BuilderRef,
  type ReadyBuilder,
} from "./types.ts";

export interface BuilderStartDeps {
  docker: Docker;
  engine: BuilderEngine;
  store: Pick<BuilderStore, "ensure" | "setState" | "get">;
  /** Engines that refused a privileged builder. */
  privileges: EnginePrivileges;
  currency: Pick<ImageCurrency, "learned" | "track" | "untrack" | "wanted">;
  volumes: Pick<VolumeManager, "ensure" | "close" | "encryption">;
  projects: Pick<BuilderProjects, "builderSettings">;
  orgs: Pick<BuilderOrgs, "builderRuntime">;
  quotas?: Pick<QuotasService, "limits">;
  runtime: BuilderRuntime;
  image: string;
  insecureRegistries?: readonly string[];
  containerdStore?: boolean;
  registry?: { host: string; caPem: string; aliases?: readonly string[] };
  readyTimeoutMs: number;
  log: Logger;
  now: () => Date;
  /** Whether the service is closing (a start waiting for BuildKit gives up). */
  closing: () => boolean;
  /** The builder's address is known: runners may reach it. */
  learnAddress: (builderId: string, containerId: string) => Promise<void>;
  /** Removes the project's network unless another of its builders runs or starts (but `except`). */
  removeNetworkIfUnused: (projectId: string, except?: string) => Promise<void>;
}

export function builderStartFactory(
  deps: BuilderStartDeps,
): (ref: BuilderRef, emulated: boolean) => Promise<ReadyBuilder> {
  const { engine, store, currency, log, now } = deps;
  const spec = RUNTIMES[deps.runtime];

  /**
   * The container on the project's network, under the privileged profile unless this engine (its
   * identity, still being read when the start began) refused that before; a refusal now is
   * remembered and the fallback profile used.
   */
  async function createContainer(
    c: Omit<BuilderContainer, "networkId" | "profile">,
    engineIdentity: Promise<string | null>,
  ): Promise<{ containerId: string; networkId: string; profile: SecurityProfileName }> {
    let networkId = await engine.ensureNetwork(c.project);
    const identity = await engineIdentity;
    let profile: SecurityProfileName =
      identity && deps.privileges.refused(identity, c.ociRuntime) ? "fallback" : "privileged";
    const create = async () => {
      try {
        return await engine.createAndStart({ ...c, networkId, profile });
      } catch (e) {
        // The project's other builder stopped meanwhile and removed the network with it.
        if (!/network .* not found/i.test(String((e as Error).message))) throw e;
        networkId = await engine.ensureNetwork(c.project);
        return await engine.createAndStart({ ...c, networkId, profile });
      }
    };
    try {
      return { containerId: await create(), networkId, profile };
    } catch (e) {
      if (profile !== "privileged" || !isPrivilegeRefusal(e)) throw e;
      if (identity) deps.privileges.rememberRefusal(identity, c.ociRuntime, (e as Error).message);
      profile = "fallback";
      log.warn(
        "the Docker engine refused a privileged builder; using the fallback profile (all capabilities but SYS_RESOURCE, seccomp and apparmor unconfined), and from now on for this engine",
        { error: (e as Error).message, engine: identity },
      );
      return { containerId: await create(), networkId, profile };
    }
  }

  return async function start(ref: BuilderRef, emulated: boolean): Promise<ReadyBuilder> {
    const stored = deps.projects.builderSettings(ref.projectId);
    if (!stored) throw new NotFoundError(`project ${ref.projectId} not found`);
    // Settings above a quota lowered since they were set stay stored; the builder gets the quota.
    const p: BuilderProject = deps.quotas ? cappedSettings(stored, deps.quotas.limits(stored.org_id)) : stored;
    const ociRuntime = deps.orgs.builderRuntime(p.org_id);
    engine.assertFiltered();
    const engineIdentity = engine.identity(); // read while the rest prepares; needed at the container's creation
    const imageId = await engine.imageId();
    currency.learned(imageId);
    const t = now().toISOString();
    const b = store.ensure(ref, deps.runtime, t);
    const dir = engine.socketDir(b.id);
    const socketPath = join(dir, spec.socketName);
    store.setState(b.id, "starting", {
      runtime: deps.runtime,
      image: deps.image,
      image_id: imageId,
      started_at: t,
      last_error: null,
      emulated: emulated ? 1 : 0,
      container_name: engine.containerName(ref),
      socket_path: socketPath,
    });
    let containerId: string | null = null;
    try {
      const volume = await deps.volumes.ensure(ref, p.cache_size_gb * 1024 ** 3);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const run = spec.container({
        cacheSizeBytes: Math.min(volume.sizeBytes ?? Infinity, p.cache_size_gb * 1024 ** 3),
        keepDays: p.cache_keep_days,
        maxParallelism: Math.max(1, p.builder_cpus),
        insecureRegistries: deps.insecureRegistries,
        containerdStore: deps.containerdStore,
        ...(deps.registry
          ? { registryCaHost: deps.registry.host, registryCaAliases: deps.registry.aliases ?? [] }
          : {}),
      });
      for (const [name, content] of Object.entries(run.files)) writeFileSync(join(dir, name), content, { mode: 0o600 });
      const made = await createContainer(
        {
          builderId: b.id,
          ref,
          project: p,
          ociRuntime,
          imageId,
          settings: currency.wanted().settings,
          volumePath: volume.path,
          run,
        },
        engineIdentity,
      );
      containerId = made.containerId;
      store.setState(b.id, "starting", {
        container_id: containerId,
        network_id: made.networkId,
        security_profile: made.profile,
        oci_runtime: ociRuntime,
      });
      currency.track(b.id, { image: deps.image, imageId, settings: currency.wanted().settings });
      const workers = await waitReady(
        { docker: deps.docker, runtime: deps.runtime, timeoutMs: deps.readyTimeoutMs, stopping: deps.closing },
        socketPath,
        containerId,
      );
      // An emulated builder runs the native image; its BuildKit lists the platforms it can run
      // (native plus what binfmt_misc handles, probed at its start). The solver refuses others.
      if (emulated && !workers.some((w) => w.platforms.some((x) => normalizePlatform(x) === ref.platform))) {
        throw new BuilderUnavailableError(
          `the builder's BuildKit cannot run ${ref.platform} (its workers offer ${[...new Set(workers.flatMap((w) => w.platforms))].join(", ") || "no platform"}); check the qemu binfmt handler with slipway doctor`,
        );
      }
      store.setState(b.id, "ready", { ready_at: now().toISOString(), last_used_at: now().toISOString() });
      await deps.learnAddress(b.id, containerId);
      log.info("builder ready", {
        builder: b.id,
        project: ref.projectId,
        platform: ref.platform,
        runtime: deps.runtime,
        profile: made.profile,
        encryption: deps.volumes.encryption,
      });
      return toReady(store.get(ref)!);
    } catch (e) {
      if (containerId) await engine.removeContainer(containerId).catch(() => {});
      currency.untrack(b.id);
      store.setState(b.id, "absent", { container_id: null, last_error: (e as Error).message.slice(0, 1000) });
      // Nothing half-made stays: the socket directory, the open volume, the network made for it.
      rmSync(dir, { recursive: true, force: true });
      await deps.volumes.close(ref).catch((x) =>
        log.warn("closing the cache volume of a failed builder failed", {
          builder: b.id,
          error: (x as Error).message,
        }),
      );
      await deps.removeNetworkIfUnused(ref.projectId, builderKey(ref));
      log.warn("builder failed to start", {
        builder: b.id,
        project: ref.projectId,
        platform: ref.platform,
        error: (e as Error).message,
      });
      throw e instanceof SlipwayError
        ? e
        : new BuilderUnavailableError(`builder failed to start: ${(e as Error).message}`);
    }
  };
}
