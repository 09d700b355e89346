/**
 * @module agent/docker-bridges
 * The bridges behind the agent's docker:NAME scopes, and every other Docker network's bridge
 * (a bridge not among them is new, and filtered until looked up). Looked up on each policy, by
 * the watchdog, and at once on Docker's network events, which come in bursts: one more look
 * after the current one, however many arrived meanwhile.
 */
import type { Logger } from "../log/logger.ts";
import { parseScope } from "../wire/egress/scopes.ts";
import type { DockerNetworks } from "./docker.ts";

export interface DockerBridgesOptions {
  docker: DockerNetworks | undefined;
  log: Logger;
  /** The scopes in force now (docker:NAME among them). */
  scopes: () => string[];
  /** False once the agent stopped or before it has a policy: events are then ignored. */
  active: () => boolean;
  /** The bridges changed on a Docker event: re-apply. */
  onChange: () => Promise<void>;
}

export type DockerBridges = ReturnType<typeof dockerBridgesFactory>;

export function dockerBridgesFactory(o: DockerBridgesOptions) {
  const bridges = new Map<string, string | null>();
  let knownBridges: string[] = [];
  let stopDockerWatch: (() => void) | null = null;

  /** Looks up the bridges of docker:NAME scopes and of every other network; true when something changed. */
  async function refresh(): Promise<boolean> {
    if (!o.docker) return false;
    const named = o
      .scopes()
      .map(parseScope)
      .filter((s) => typeof s !== "string" && s.kind === "docker" && s.network !== "*") as { network: string }[];
    if (named.length === 0) return false;
    if (!stopDockerWatch) {
      let warned = false;
      stopDockerWatch = o.docker.watch(
        () => void onDockerEvent(),
        (e) => {
          if (warned) return;
          warned = true;
          o.log.warn("egress: cannot follow Docker's network events; polling only", { error: String(e) });
        },
      );
    }
    let list: Map<string, string>;
    try {
      list = await o.docker.list();
    } catch (e) {
      o.log.warn("egress: cannot list Docker's networks; keeping what is applied", { error: String(e) });
      return false;
    }
    let changed = false;
    for (const { network } of named) {
      const b = list.get(network) ?? null;
      if (bridges.get(network) !== b) changed = true;
      bridges.set(network, b);
    }
    const known = [...new Set(list.values())].sort();
    if (known.join() !== knownBridges.join()) changed = true;
    knownBridges = known;
    return changed;
  }

  /** A Docker network event: look the bridges up again and re-apply when they changed. */
  let dockerPending: Promise<void> | null = null;
  let dockerAgain = false;
  function onDockerEvent(): Promise<void> {
    if (dockerPending) {
      dockerAgain = true; // events come in bursts: one more look after the current one
      return dockerPending;
    }
    dockerPending = (async () => {
      do {
        dockerAgain = false;
        if (!o.active()) break;
        if (await refresh()) await o.onChange();
      } while (dockerAgain);
    })().finally(() => (dockerPending = null));
    return dockerPending;
  }

  return {
    refresh,
    /** The bridge of a docker:NAME scope's network; null when it does not exist (or is not looked up). */
    bridgeOf: (network: string): string | null => bridges.get(network) ?? null,
    /** Every Docker network's bridge, as last looked up. */
    known: (): string[] => knownBridges,
    stop(): void {
      stopDockerWatch?.();
    },
  };
}
