/**
 * @module builders/engine
 * The Docker engine as builders use it, through its API: the labels that say which containers and
 * networks are Slipway's, the names it gives them, the builder container's spec (isolation: its
 * own bridge network, no published ports, the socket directory and the cache volume as the only
 * mounts, the project's CPU/memory limits and a pids limit), and the engine's own facts (its
 * architecture, its CPUs). No state of the builder life cycle lives here, beyond which containers
 * this process is removing itself (their death is no loss).
 */
import type Docker from "dockerode";
import { writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { PreconditionError, UnavailableError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { BuilderRuntime } from "../router/index.ts";
import { ensureProjectNetwork } from "./network.ts";
import { bridgeName, type PolicyNames } from "./network-policy.ts";
import { BuilderUnavailableError } from "./readiness.ts";
import { CONTAINER_RUN_DIR, REGISTRY_CA_FILE, RUNTIMES, platformOfArch } from "./runtimes.ts";
import { FALLBACK_PROFILE, PRIVILEGED_PROFILE, type SecurityProfileName } from "./security.ts";
import type { BuilderProject, BuilderRef } from "./types.ts";

export const BUILDER_LABELS = {
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
const LABEL = BUILDER_LABELS;

export interface BuilderEngineDeps {
  docker: Docker;
  applianceId: string;
  /** Socket directories live under `<dataDir>/builders/<builder id>`. */
  dataDir: string;
  runtime: BuilderRuntime;
  /** Image reference for the runtime (tag or digest). */
  image: string;
  log: Logger;
  pidsLimit?: number;
  /** The appliance's registry as builders reach it (see BuilderServiceDeps.registry). */
  registry?: { host: string; caPem: string; aliases?: readonly string[] };
  /** Builder bridges are named for the policy, and no container is made while it is on but not in force. */
  networkPolicy?: { names: PolicyNames; refusal(): string | null };
}

/** What one builder container is made of (see createAndStart). */
export interface BuilderContainer {
  builderId: string;
  ref: BuilderRef;
  project: BuilderProject;
  /** The organization's OCI runtime, or null for the engine's default. */
  ociRuntime: string | null;
  networkId: string;
  imageId: string;
  /** The image and settings key the builder is labelled with (see currency.ts). */
  settings: string;
  volumePath: string;
  profile: SecurityProfileName;
  run: { cmd: string[]; env: string[] };
}

export type BuilderEngine = ReturnType<typeof builderEngineFactory>;

// A factory of short closures over one engine connection; its length is theirs.
export function builderEngineFactory(deps: BuilderEngineDeps) {
  const { docker, log } = deps;
  const spec = RUNTIMES[deps.runtime];
  const short = deps.applianceId
    .replace(/[^a-zA-Z0-9]/g, "")
    .slice(-8)
    .toLowerCase();
  const ours = JSON.stringify({ label: [`${LABEL.appliance}=${deps.applianceId}`] });
  /** Containers we are stopping ourselves: their `die` event is no loss. */
  const expectedDeaths = new Set<string>();
  let nativePlatform: string | null = null;
  /** The engine's CPU count: a builder never asks for more (the engine refuses such a container). */
  let engineCpus = Number.POSITIVE_INFINITY;
  /** Network creations in flight, by project: a project's platforms start at once (see ensureProjectNetwork). */
  const networkCreations = new Map<string, Promise<string>>();

  const containerName = (r: BuilderRef) =>
    `slipway-${short}-${r.projectId.toLowerCase()}-${r.platform.replaceAll("/", "-")}`;
  const networkName = (projectId: string) => `slipway-${short}-${projectId.toLowerCase()}`;
  const socketDir = (builderId: string) => join(deps.dataDir, "builders", builderId);

  /** Fail closed: the policy is on but not in force (never applied, or a re-apply failed). */
  function assertFiltered() {
    const refusal = deps.networkPolicy?.refusal();
    if (refusal) throw new PreconditionError(refusal);
  }

  async function removeContainer(idOrName: string) {
    expectedDeaths.add(idOrName);
    try {
      await docker.getContainer(idOrName).remove({ force: true, v: true });
    } catch (e) {
      if (!isNotFound(e) && !/removal of container .* is already in progress/i.test(String((e as Error).message)))
        throw e;
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
    const mounts =
      deps.runtime === "dockerd"
        ? [...new Set([host, ...(deps.registry!.aliases ?? [])])].map((h) => ({
            Type: "bind",
            Source: join(runDir, REGISTRY_CA_FILE),
            Target: `/etc/docker/certs.d/${h}/ca.crt`,
            ReadOnly: true,
          }))
        : [];
    return { extraHosts, mounts };
  }

  return {
    containerName,
    socketDir,
    assertFiltered,
    removeContainer,

    /** Whether the engine reported this container's death because we removed or stopped it (told once). */
    expectedDeath(containerId: string): boolean {
      return expectedDeaths.delete(containerId);
    },

    /** The engine's platform (linux/amd64, ...); learns its CPU count on the way. */
    async nativePlatform(): Promise<string> {
      if (nativePlatform) return nativePlatform;
      let info: { Architecture?: string; NCPU?: number };
      try {
        info = (await docker.info()) as typeof info;
      } catch (e) {
        // A build asking for its builder gets `unavailable`, not an internal error; where the engine
        // was looked for (a host path) stays in the appliance's log.
        log.warn("the Docker engine is not reachable", { error: (e as Error).message });
        throw new UnavailableError(
          "the Docker engine is not reachable: builders cannot start until it is (the appliance's log says why)",
        );
      }
      if (info.NCPU && info.NCPU > 0) engineCpus = info.NCPU;
      const p = platformOfArch(info.Architecture ?? "");
      if (!p)
        throw new PreconditionError(
          `the Docker engine reports an architecture Slipway does not know: ${info.Architecture}`,
        );
      nativePlatform = p;
      return p;
    },

    /**
     * Who the engine is, for what it said about privileged builders (engine-privileges.ts): its ID
     * (made once per engine, kept across restarts), its version, the kernel it runs on and its
     * security options (rootless, user namespaces, seccomp). Whether a privileged container can
     * start depends on all of them; any change means asking again. Read fresh at each start (it
     * overlaps the volume's preparation): an engine replaced under a running serve is noticed.
     * Null when the engine does not say.
     */
    async identity(): Promise<string | null> {
      try {
        const info = (await docker.info()) as {
          ID?: string;
          ServerVersion?: string;
          KernelVersion?: string;
          SecurityOptions?: string[];
        };
        if (!info.ID) return null;
        return [
          info.ID,
          info.ServerVersion ?? "",
          info.KernelVersion ?? "",
          [...(info.SecurityOptions ?? [])].sort().join(";"),
        ].join(" ");
      } catch {
        return null;
      }
    },

    /** The configured image's id on the engine; a missing image says how to get it. */
    async imageId(): Promise<string> {
      try {
        return ((await docker.getImage(deps.image).inspect()) as { Id: string }).Id;
      } catch (e) {
        if (isNotFound(e))
          throw new PreconditionError(
            `builder image ${deps.image} (runtime ${deps.runtime}) is not present on the Docker engine; run \`slipway builder-image build\` or \`slipway builder-image import FILE.tar\``,
          );
        throw e;
      }
    },

    /** The project's network, made if missing (one per project, beside its running builders). */
    ensureNetwork(p: Pick<BuilderProject, "id" | "org_id">): Promise<string> {
      const pending = networkCreations.get(p.id);
      if (pending) return pending;
      const bridge = deps.networkPolicy ? bridgeName(deps.networkPolicy.names, networkName(p.id)) : undefined;
      const created = ensureProjectNetwork(
        docker,
        {
          name: networkName(p.id),
          projectId: p.id,
          labels: { [LABEL.appliance]: deps.applianceId, [LABEL.org]: p.org_id, [LABEL.project]: p.id },
          projectLabel: LABEL.project,
          ...(bridge ? { bridge } : {}),
        },
        log,
      ).finally(() => networkCreations.delete(p.id));
      networkCreations.set(p.id, created);
      return created;
    },

    /** Removes the project's network, if it is the one we made for it and no container is attached. */
    async removeNetwork(projectId: string): Promise<void> {
      try {
        // Only the network we made for this project: one that merely has its name is someone else's.
        const n = (await docker.getNetwork(networkName(projectId)).inspect()) as {
          Id: string;
          Labels?: Record<string, string>;
        };
        if (n.Labels?.[LABEL.appliance] !== deps.applianceId || n.Labels?.[LABEL.project] !== projectId) return;
        await docker.getNetwork(n.Id).remove();
      } catch (e) {
        if (!isNotFound(e) && !/active endpoints/i.test(String((e as Error).message)))
          log.warn("builder network removal failed", { project: projectId, error: (e as Error).message });
      }
    },

    /** Whether a network's bridge is one the policy filters (a network from before it is not). */
    async onPolicyBridge(networkId: string | null): Promise<boolean> {
      if (!deps.networkPolicy) return true;
      if (!networkId) return false;
      const n = (await docker
        .getNetwork(networkId)
        .inspect()
        .catch(() => null)) as { Options?: Record<string, string> } | null;
      return n?.Options?.["com.docker.network.bridge.name"]?.startsWith(deps.networkPolicy.names.bridgePrefix) ?? false;
    },

    /** Makes and starts the builder's container (a stale one of the same name goes first); its id. */
    async createAndStart(c: BuilderContainer): Promise<string> {
      assertFiltered();
      const name = containerName(c.ref);
      await freeName(name); // a stale one from a crash, or one that just died
      const sec = c.profile === "privileged" ? PRIVILEGED_PROFILE : FALLBACK_PROFILE;
      const reg = deps.registry ? await registryAccess(c.networkId, socketDir(c.builderId)) : null;
      const p = c.project;
      const made = await docker.createContainer({
        name,
        Image: deps.image,
        Cmd: c.run.cmd,
        Env: c.run.env,
        Labels: {
          [LABEL.appliance]: deps.applianceId,
          [LABEL.builder]: c.builderId,
          [LABEL.org]: p.org_id,
          [LABEL.project]: p.id,
          [LABEL.platform]: c.ref.platform,
          [LABEL.runtime]: deps.runtime,
          [LABEL.image]: c.imageId,
          [LABEL.profile]: c.profile,
          [LABEL.settings]: c.settings,
        },
        HostConfig: {
          ...sec,
          Binds: [`${socketDir(c.builderId)}:${CONTAINER_RUN_DIR}`, `${c.volumePath}:${spec.stateDir}`],
          // Mounts, not Binds: a certs.d directory is named host:port, and Binds split on colons.
          ...(reg ? { ExtraHosts: reg.extraHosts, Mounts: reg.mounts } : {}),
          NetworkMode: c.networkId,
          NanoCpus: Math.min(p.builder_cpus, engineCpus) * 1e9,
          Memory: p.builder_memory_mb * 1024 * 1024,
          MemorySwap: p.builder_memory_mb * 1024 * 1024,
          PidsLimit: deps.pidsLimit ?? 16_384,
          PortBindings: {},
          PublishAllPorts: false,
          RestartPolicy: { Name: "no" },
          // Build containers nest under the builder's own cgroup, so its limits hold for them.
          CgroupnsMode: "private",
          ...(c.ociRuntime ? { Runtime: c.ociRuntime } : {}),
        } as unknown as Docker.HostConfig, // CgroupnsMode is in the Engine API (1.41+) but not in the typings
      });
      try {
        await made.start();
      } catch (e) {
        await removeContainer(made.id);
        throw e;
      }
      return made.id;
    },

    /** Stops the container (ten seconds' grace), then removes it and its anonymous volumes. */
    async stopContainer(containerId: string, builderId: string): Promise<void> {
      expectedDeaths.add(containerId);
      try {
        await docker.getContainer(containerId).stop({ t: 10 });
      } catch (e) {
        if (!isNotFound(e) && !/is not running|already stopped/i.test(String((e as Error).message)))
          log.warn("builder stop failed; removing it", { builder: builderId, error: (e as Error).message });
      }
      await removeContainer(containerId);
    },

    /** The container's address on its (only) network, or null. */
    async address(containerId: string): Promise<string | null> {
      const info = (await docker
        .getContainer(containerId)
        .inspect()
        .catch(() => null)) as {
        NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> };
      } | null;
      const net = Object.values(info?.NetworkSettings?.Networks ?? {})[0];
      return net?.IPAddress || null;
    },

    /** This appliance's containers, running or not. */
    async containers(): Promise<{ Id: string; ImageID: string; State: string; Labels: Record<string, string> }[]> {
      return (await docker.listContainers({ all: true, filters: ours })) as {
        Id: string;
        ImageID: string;
        State: string;
        Labels: Record<string, string>;
      }[];
    },

    /** The projects this appliance's networks were made for. */
    async networkProjects(): Promise<string[]> {
      const networks = (await docker.listNetworks({ filters: ours })) as { Labels?: Record<string, string> }[];
      return networks.flatMap((n) => {
        const projectId = n.Labels?.[LABEL.project];
        return projectId ? [projectId] : [];
      });
    },

    /** Follows the engine's events: `gone` hears of every container of ours that dies or vanishes. */
    async watchDeaths(gone: (containerId: string, reason: string) => void): Promise<Readable> {
      const stream = (await docker.getEvents({
        filters: JSON.stringify({
          type: ["container"],
          event: ["die", "destroy", "oom"],
          label: [`${LABEL.appliance}=${deps.applianceId}`],
        }),
      })) as unknown as Readable;
      let buf = "";
      stream.on("data", (chunk: Buffer) => {
        buf += chunk.toString("utf8");
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            const ev = JSON.parse(line) as { id?: string; Action?: string; status?: string };
            if (ev.id) gone(ev.id, ev.Action ?? ev.status ?? "died");
          } catch {
            // a partial line: wait for more
          }
        }
      });
      stream.on("error", () => {});
      return stream;
    },
  };
}

export function isNotFound(e: unknown): boolean {
  return (e as { statusCode?: number })?.statusCode === 404;
}
