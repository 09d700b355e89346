/**
 * @module agent
 * The runner-host egress agent (`slipway agent`, and `serve`'s in-process local agents): pulls
 * its host's policy, resolves and pins names, renders and applies ipsets and an iptables chain,
 * answers container DNS, and reports apply status and (would-be) drops.
 *
 * It runs on hosts that are not the appliance, so it shares with the server only its contract
 * (src/wire/egress: the policy it receives, the status and events it sends, targets, scopes),
 * src/config, and leaf utilities (src/errors.ts, src/log, src/version.ts, src/host, src/fs). It
 * imports nothing of the server's services (src/egress, src/db, src/auth, ...); the server's
 * side (src/egress/local.ts) imports the agent, never the other way round.
 */
export {
  startEgressAgent,
  uninstallEgress,
  type EgressAgent,
  type PolicySource,
  type DropEvent,
  type DropSource,
} from "./agent.ts";
export { applianceAddresses, httpPolicySource } from "./appliance-client.ts";
export { dockerNetworks, type DockerNetworks } from "./docker.ts";
export { nflogSource } from "./nflog.ts";
