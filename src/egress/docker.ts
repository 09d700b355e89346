/**
 * @module egress/docker
 * docker:NAME scopes: the bridge interface of a Docker network, from the Docker Engine API.
 * User-defined networks use `br-<first 12 hex of the id>` unless created with the
 * com.docker.network.bridge.name option (the default network: docker0).
 */
import Docker from "dockerode";

export function dockerBridgeLookup(docker = new Docker()): (network: string) => Promise<string | null> {
  return async (network) => {
    try {
      const n = (await docker.getNetwork(network).inspect()) as { Id: string; Driver: string; Options?: Record<string, string> };
      if (n.Driver !== "bridge") return null;
      return n.Options?.["com.docker.network.bridge.name"] ?? `br-${n.Id.slice(0, 12)}`;
    } catch {
      return null;
    }
  };
}
