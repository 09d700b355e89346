/**
 * @module wire/egress/policy
 * The egress agent's contract with the appliance, as JSON over the REST API
 * (`/api/v1/egress/agent/{policy,status,events}`): the policy document an agent pulls, the apply
 * status and the events it sends back. Both sides import these shapes from here, so the agent
 * (src/agent) never reaches into the server's egress service for its types.
 */

export type Mode = "off" | "monitor" | "enforce";
export type RuleAction = "allow" | "deny";
/** would-block: monitor mode let it through; blocked: enforce mode refused it. */
export type EventAction = "blocked" | "would-block";

/** What an agent pulls: everything it needs to render its host's rules. */
export interface AgentPolicy {
  etag: string;
  org_id: string;
  host_id: string;
  mode: Mode;
  default_action: RuleAction;
  rules: { action: RuleAction; target: string; ports: string | null }[];
  scopes: string[];
  /** Addresses/CIDRs always allowed: builders and the operator's extra lists. */
  always_allow: string[];
  /** Hostnames always allowed (the appliance's API and build endpoint); the agent resolves them. */
  always_allow_hosts: string[];
}

/** What an agent applied; `dns_resolvers` are allowed for DNS (53/udp, 53/tcp) only. */
export interface StatusReport {
  etag: string;
  ok: boolean;
  error?: string | null;
  dns_resolvers?: string[];
}

/** A (would-be) drop as an agent reports it, deduplicated per scope, source and destination. */
export interface EventReport {
  action: EventAction;
  scope: string;
  source: string;
  dst: string;
  port: number;
  protocol: string;
  hostname?: string | null;
  count: number;
  at: string;
}
