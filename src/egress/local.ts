/**
 * @module egress/local
 * `serve`'s own agents, for runners colocated with the appliance (egress.local_agent): every
 * runner host the administrator designated local is enforced on this host, with the scopes the
 * administrator gave (never the ones its organization registered), by an in-process agent that
 * reads its policy straight from the egress service (no token, no HTTP); its events outside those
 * scopes are dropped. Each designated host gets its own chain and sets (SLIPWAY_EGRESS_<n>,
 * slw<n>_…) so colocated organizations never share rules. A designation ended takes the host's
 * scopes away at once (no jumps); hosts designated later are picked up at the next start.
 *
 * Why here and not in src/agent: this is server wiring that uses the agent. It adapts the
 * server's egress service to the agent's PolicySource in-process, so it needs the service, which
 * src/agent must never import (the runner-host agent shares only src/wire and src/config with
 * the server). The dependency runs one way: src/egress → src/agent.
 */
import type { Logger } from "../log/logger.ts";
import { dockerNetworks, nflogSource, startEgressAgent, type EgressAgent } from "../agent/index.ts";
import { hostExec } from "../host/exec.ts";
import type { EgressService } from "./service.ts";

export interface LocalAgentsOptions {
  egress: EgressService;
  log: Logger;
  hostsFile: string;
  nflogGroup: number;
  graceMs: number;
}

export async function startLocalEgressAgents(
  o: LocalAgentsOptions,
): Promise<{ agents: EgressAgent[]; stop(): Promise<void> }> {
  for (const h of o.egress.undesignatedNamedLocal()) {
    o.log.warn(
      "egress: a runner host named 'local' is not enforced on this host until the administrator designates it (slipway egress set-local)",
      { runner_host: h.id, org_id: h.org_id },
    );
  }
  const ids = o.egress.localHostIds();
  const agents: EgressAgent[] = [];
  for (const [i, hostId] of ids.entries()) {
    agents.push(
      await startEgressAgent({
        source: {
          fetch: (etag, wait, signal) => o.egress.waitForPolicy(hostId, etag, wait * 1000, signal, { local: true }),
          reportStatus: async (s) => o.egress.reportStatus(hostId, s),
          reportEvents: async (events) => void o.egress.reportEvents(hostId, events, { local: true }),
        },
        exec: hostExec(),
        log: o.log.child({ component: "egress", runner_host: hostId }),
        hostsFile: o.hostsFile,
        stateFile: null, // the database is the state
        instance: String(i),
        nflogGroup: o.nflogGroup + i,
        graceMs: o.graceMs,
        docker: dockerNetworks(),
        // Its own NFLOG group: only its own chain logs there, so it sees no other host's drops.
        drops: nflogSource(o.nflogGroup + i),
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
