/**
 * @module builders/network
 * A project's own bridge network for its builders, with traffic between containers off, so one
 * project's builder cannot reach another's.
 */
import type Docker from "dockerode";
import { PreconditionError, ResourceExhaustedError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";

type NetworkDocker = Pick<Docker, "getNetwork" | "createNetwork" | "listNetworks">;
interface ProjectNetwork {
  name: string;
  projectId: string;
  labels: Record<string, string>;
  projectLabel: string;
  /** The bridge interface's name (the network policy matches builder bridges by its prefix). */
  bridge?: string;
}

/**
 * The network's id: the existing one if it carries this project's label, else a new one. The
 * engine does not refuse a second network of the same name (CheckDuplicate is gone from its API),
 * so callers serialise creations per project (a project's platforms start at once); a name made
 * ambiguous by an earlier race is reduced to its oldest network.
 */
export async function ensureProjectNetwork(
  docker: NetworkDocker,
  o: ProjectNetwork,
  log: Pick<Logger, "warn">,
): Promise<string> {
  try {
    const info = (await docker.getNetwork(o.name).inspect()) as {
      Id: string;
      Labels?: Record<string, string>;
      Options?: Record<string, string>;
    };
    if (info.Labels?.[o.projectLabel] !== o.projectId)
      throw new PreconditionError(`Docker network ${o.name} exists but is not this project's builder network`);
    // A network from before the policy (another bridge name) would run its builders unfiltered.
    if (o.bridge && info.Options?.["com.docker.network.bridge.name"] !== o.bridge)
      throw new PreconditionError(
        `Docker network ${o.name} is not on the bridge ${o.bridge} the builder network policy filters; it is removed once its builders stop`,
      );
    return info.Id;
  } catch (e) {
    if (/ambiguous/i.test(String((e as Error).message))) return await dedupeNetwork(docker, o, log);
    if ((e as { statusCode?: number })?.statusCode !== 404) throw e;
  }
  try {
    const n = await docker.createNetwork({
      Name: o.name,
      Driver: "bridge",
      CheckDuplicate: true,
      Internal: false,
      Labels: o.labels,
      // No traffic between containers on this network; each project has its own network.
      Options: {
        "com.docker.network.bridge.enable_icc": "false",
        ...(o.bridge ? { "com.docker.network.bridge.name": o.bridge } : {}),
      },
    });
    return n.id;
  } catch (e) {
    // Two starts for two platforms of one project may race to create it.
    if (/already exists/i.test(String((e as Error).message)))
      return ((await docker.getNetwork(o.name).inspect()) as { Id: string }).Id;
    // The engine's address pools are used up (by builders, or by other networks on this host).
    if (/non-overlapping.*address pool|address pools? .*exhausted/i.test(String((e as Error).message))) {
      throw new ResourceExhaustedError(
        "the Docker engine has no address pool left for another builder network; lower builders.max_running (each running builder holds one network) or give Docker more default-address-pools",
      );
    }
    throw e;
  }
}

/** Several networks under the project's network name (left by an earlier race): keeps the oldest, removes the others. */
async function dedupeNetwork(docker: NetworkDocker, o: ProjectNetwork, log: Pick<Logger, "warn">): Promise<string> {
  const found = (
    (await docker.listNetworks({
      filters: JSON.stringify({ name: [o.name], label: [`${o.projectLabel}=${o.projectId}`] }),
    })) as { Id: string; Name: string; Created: string }[]
  )
    .filter((n) => n.Name === o.name)
    .sort((a, b) => Date.parse(a.Created) - Date.parse(b.Created));
  if (found.length === 0)
    throw new PreconditionError(
      `Docker network name ${o.name} is ambiguous and none of its networks is this project's`,
    );
  for (const n of found.slice(1))
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch((e) => log.warn("duplicate builder network not removed", { network: n.Id, error: (e as Error).message }));
  return found[0]!.Id;
}
