/**
 * @module builders/image/container
 * How a container runs the `dockerd` builder image: the two host directories it binds (socket,
 * data root), the security profile a nested dockerd needs, a private cgroup namespace (so the
 * build containers it starts are nested under the builder's own cgroup and its limits), and the
 * entrypoint's environment. The builder service adds its names, labels, network and limits.
 */
import type Docker from "dockerode";
import { FALLBACK_PROFILE, PRIVILEGED_PROFILE, type SecurityProfileName } from "../security.ts";
import { BUILDER_SOCKET_DIR, DOCKERD_DATA_ROOT } from "./recipe.ts";

export type SecurityProfile = SecurityProfileName;

export interface DockerdContainerOptions {
  image: string;
  /** Host directory bound at BUILDER_SOCKET_DIR: dockerd.sock appears in it. */
  socketDir: string;
  /** Host directory (the cache volume's mount) bound at DOCKERD_DATA_ROOT. */
  dataDir: string;
  profile: SecurityProfile;
  /** Numeric group that owns the socket (so a non-root serve in that group can use it). */
  socketGid?: number;
  /** dockerd daemon.json content (e.g. builder GC policy), passed to the entrypoint. */
  daemonConfig?: Record<string, unknown>;
  /** Extra dockerd flags, appended after the entrypoint's own. */
  dockerdArgs?: string[];
}

/** The Docker HostConfig of a security profile (defined once, in builders/security.ts). */
export function securityHostConfig(profile: SecurityProfile): Partial<Docker.HostConfig> {
  return (profile === "privileged" ? PRIVILEGED_PROFILE : FALLBACK_PROFILE) as Partial<Docker.HostConfig>;
}

export function dockerdContainerProfile(
  o: DockerdContainerOptions,
): Pick<Docker.ContainerCreateOptions, "Image" | "Env" | "Cmd" | "HostConfig"> {
  const env: string[] = [];
  if (o.socketGid !== undefined) env.push(`SLIPWAY_SOCKET_GID=${o.socketGid}`);
  if (o.daemonConfig) env.push(`SLIPWAY_DOCKERD_CONFIG_JSON=${JSON.stringify(o.daemonConfig)}`);
  return {
    Image: o.image,
    Env: env,
    Cmd: o.dockerdArgs ?? [],
    HostConfig: {
      ...securityHostConfig(o.profile),
      Binds: [`${o.socketDir}:${BUILDER_SOCKET_DIR}`, `${o.dataDir}:${DOCKERD_DATA_ROOT}`],
      CgroupnsMode: "private",
      Init: false,
    } as Docker.HostConfig,
  };
}
