/**
 * @module egress/models
 * The egress API's shapes (an organization's policy and rules, runner hosts, events, and what an
 * agent sends), defined once: the routes validate with them, the OpenAPI document describes
 * them, and the CLI takes its types from them. Imports no service.
 */
import { t, type Static } from "elysia";
import { BodyInteger } from "../http/schema.ts";

export const EgressAction = t.Union([t.Literal("allow"), t.Literal("deny")]);
export const EgressMode = t.Union([t.Literal("off"), t.Literal("monitor"), t.Literal("enforce")]);
export const Rule = t.Object({
  id: t.String(),
  action: EgressAction,
  target: t.String(),
  ports: t.Nullable(t.String()),
  comment: t.String(),
  created_at: t.String(),
});
export type RuleView = Static<typeof Rule>;
export const Policy = t.Object({
  org_id: t.String(),
  mode: EgressMode,
  default_action: EgressAction,
  revision: t.Integer(),
  updated_at: t.Nullable(t.String()),
  rules: t.Array(Rule),
});
export type PolicyView = Static<typeof Policy>;
export const Host = t.Object({
  id: t.String(),
  org_id: t.String(),
  name: t.String(),
  scopes: t.Array(t.String()),
  created_at: t.String(),
  last_seen_at: t.Nullable(t.String()),
  applied_revision: t.Nullable(t.String()),
  applied_ok: t.Nullable(t.Boolean()),
  applied_error: t.Nullable(t.String()),
  applied_at: t.Nullable(t.String()),
  dns_resolvers: t.Array(t.String(), { description: "the resolvers the agent allows, for DNS only (53/udp, 53/tcp)" }),
  local_scopes: t.Nullable(t.Array(t.String()), {
    description:
      "scopes serve enforces this host with on the appliance host (set by the administrator); null: not local",
  }),
});
export type HostView = Static<typeof Host>;
export const EventAction = t.Union([t.Literal("blocked"), t.Literal("would-block")]);
export const Event = t.Object({
  action: EventAction,
  host_id: t.String(),
  scope: t.String(),
  source: t.String(),
  dst: t.String(),
  port: t.Integer(),
  protocol: t.String(),
  hostname: t.Nullable(t.String()),
  count: t.Integer(),
  first_at: t.String(),
  last_at: t.String(),
});
export type EventView = Static<typeof Event>;
export const Destination = t.Object({
  destination: t.String({ description: "the name the agent saw, else the address" }),
  port: t.Integer(),
  protocols: t.Array(t.String()),
  blocked: t.Integer({ description: "connections refused (enforce), summed over hosts and sources" }),
  would_block: t.Integer({ description: "connections that would have been refused (monitor)" }),
  hosts: t.Integer({ description: "runner hosts that reported it" }),
  first_at: t.String(),
  last_at: t.String(),
  allowed_by: t.Nullable(t.String({ description: "the allow rule that lets it through now (no deny rule matching)" })),
});
export type DestinationView = Static<typeof Destination>;
export const EventsQuery = t.Object({ action: t.Optional(EventAction) });

const Scopes = t.Array(t.String({ maxLength: 200 }), {
  minItems: 1,
  maxItems: 64,
  description: "host | uid:N | docker:NETWORK | docker:* | bridge:IFACE | subnet:CIDR",
});
const HostName = t.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" });

/** PUT /orgs/{org}/egress/mode */
export const ModeSet = t.Object({ mode: EgressMode }, { additionalProperties: false });
/** PUT /orgs/{org}/egress/default */
export const DefaultSet = t.Object({ action: EgressAction }, { additionalProperties: false });
/** POST /orgs/{org}/egress/rules */
export const RuleCreate = t.Object(
  {
    action: EgressAction,
    target: t.String({
      minLength: 1,
      maxLength: 260,
      description: "address, CIDR, hostname, or *.domain (names strictly below domain, not the apex)",
    }),
    ports: t.Optional(
      t.Nullable(
        t.String({ maxLength: 200, description: "e.g. 443 or 80,443 or 8000-8100 (TCP and UDP); omitted: every port" }),
      ),
    ),
    comment: t.Optional(t.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
/** PATCH /orgs/{org}/egress/rules/{ref} (a rule's id): the fields given change, the others stay. */
export const RuleUpdate = t.Object(
  {
    action: t.Optional(EgressAction),
    target: t.Optional(RuleCreate.properties.target),
    ports: RuleCreate.properties.ports,
    comment: RuleCreate.properties.comment,
  },
  { additionalProperties: false, minProperties: 1 },
);
/** POST /orgs/{org}/egress/hosts */
export const HostCreate = t.Object({ name: HostName, scopes: Scopes }, { additionalProperties: false });
export const HostCreated = t.Object({ host: Host, token: t.String({ description: "the agent token, shown once" }) });
export type HostCreatedView = Static<typeof HostCreated>;
/** PUT /orgs/{org}/egress/hosts/{id}/scopes and /egress/local-hosts/{id} */
export const ScopesSet = t.Object({ scopes: Scopes }, { additionalProperties: false });

/** GET /egress/agent/policy */
export const AgentPolicyQuery = t.Object({
  etag: t.Optional(t.String({ maxLength: 64 })),
  wait: t.Optional(t.Numeric({ minimum: 0, maximum: 55 })),
});
/** POST /egress/agent/status */
export const AgentStatus = t.Object(
  {
    etag: t.String({ maxLength: 64 }),
    ok: t.Boolean(),
    error: t.Optional(t.Nullable(t.String({ maxLength: 4000 }))),
    dns_resolvers: t.Optional(
      t.Array(t.String({ maxLength: 64 }), {
        maxItems: 16,
        description: "the resolvers allowed for DNS only (53/udp, 53/tcp)",
      }),
    ),
  },
  { additionalProperties: false },
);
/** POST /egress/agent/events */
export const AgentEvents = t.Object(
  {
    events: t.Array(
      t.Object({
        action: EventAction,
        scope: t.String({ maxLength: 200 }),
        source: t.String({ maxLength: 100 }),
        dst: t.String({ maxLength: 64 }),
        port: BodyInteger({ minimum: 0, maximum: 65535 }),
        protocol: t.String({ maxLength: 16 }),
        hostname: t.Optional(t.Nullable(t.String({ maxLength: 260 }))),
        count: BodyInteger({ minimum: 1 }),
        at: t.String({ maxLength: 40 }),
      }),
      { maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);
