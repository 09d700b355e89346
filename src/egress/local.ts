/**
 * @module egress/local
 * `serve`'s own agents, for runners colocated with the appliance (egress.local_agent): every
 * runner host registered with the name `local` is enforced on this host by an in-process agent
 * that reads its policy straight from the egress service (no token, no HTTP). Each organization
 * gets its own chain and sets (SLIPWAY_EGRESS_<n>, slw<n>_…) so colocated organizations never
 * share rules. Runner hosts named `local` registered later are picked up at the next start.
 */
import type { Logger } from "../log/logger.ts";
import { startEgressAgent, type EgressAgent } from "./agent.ts";
import { hostExec } from "./apply.ts";
import { dockerBridgeLookup } from "./docker.ts";
import type { EgressService } from "./service.ts";

export interface LocalAgentsOptions {
  egress: EgressService;
  log: Logger;
  hostsFile: string;
  nflogGroup: number;
  graceMs: number;
}

export async function startLocalEgressAgents(o: LocalAgentsOptions): Promise<{ agents: EgressAgent[]; stop(): Promise<void> }> {
  const ids = o.egress.localHostIds();
  const agents: EgressAgent[] = [];
  for (const [i, hostId] of ids.entries()) {
    agents.push(
      await startEgressAgent({
        source: {
          fetch: (etag, wait, signal) => o.egress.waitForPolicy(hostId, etag, wait * 1000, signal),
          reportStatus: async (s) => o.egress.reportStatus(hostId, s),
          reportEvents: async (events) => void o.egress.reportEvents(hostId, events),
        },
        exec: hostExec(),
        log: o.log.child({ component: "egress", runner_host: hostId }),
        hostsFile: o.hostsFile,
        stateFile: null, // the database is the state
        instance: String(i),
        nflogGroup: o.nflogGroup + i,
        graceMs: o.graceMs,
        bridgeOf: dockerBridgeLookup(),
      }),
    );
  }
  return {
    agents,
    async stop() {
      for (const a of agents) await a.stop();
    },
  };
}
