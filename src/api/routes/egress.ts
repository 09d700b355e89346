/**
 * @module api/routes/egress
 * An organization's egress policy, its runner hosts and what their agents report (owners edit,
 * members read), the agent's own endpoints (an agent token: its host's policy by long
 * poll, apply status, would-be blocks), and the administrator's designation of runner hosts
 * that `serve` enforces on the appliance host itself.
 */
import { Elysia, t } from "elysia";
import { BodyInteger } from "../schema.ts";
import { authorize } from "../../auth/index.ts";
import type { EgressService } from "../../egress/service.ts";
import { ForbiddenError, NotFoundError } from "../../errors.ts";
import type { IdentityContext } from "../identity.ts";
import { holdOpen } from "../context.ts";

const Action = t.Union([t.Literal("allow"), t.Literal("deny")]);
const Mode = t.Union([t.Literal("off"), t.Literal("monitor"), t.Literal("enforce")]);
const Rule = t.Object({ id: t.String(), action: Action, target: t.String(), ports: t.Nullable(t.String()), comment: t.String(), created_at: t.String() });
const Policy = t.Object({ org_id: t.String(), mode: Mode, default_action: Action, revision: t.Integer(), updated_at: t.Nullable(t.String()), rules: t.Array(Rule) });
const Host = t.Object({
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
  local_scopes: t.Nullable(t.Array(t.String()), { description: "scopes serve enforces this host with on the appliance host (set by the administrator); null: not local" }),
});
const EventAction = t.Union([t.Literal("blocked"), t.Literal("would-block")]);
const Event = t.Object({
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
const Scopes = t.Array(t.String({ maxLength: 200 }), { minItems: 1, maxItems: 64, description: "host | uid:N | docker:NETWORK | docker:* | bridge:IFACE | subnet:CIDR" });
const HostName = t.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" });
const bearer = [{ bearer: [] }];

export function egressRoutes(ctx: IdentityContext & { egress: EgressService }) {
  const { orgs, egress } = ctx;
  const orgOf = (ref: string) => orgs.get(ref);
  const hostIn = (orgId: string, hostId: string) => {
    const h = egress.getHost(hostId);
    if (h.org_id !== orgId) throw new NotFoundError("no such runner host");
    return h;
  };
  const agentOf = async (request: Request) => {
    const actor = await ctx.actorOf(request);
    if (actor.kind !== "agent") throw new ForbiddenError("this endpoint takes an agent token (slw_a_…)");
    authorize(actor, "egress:agent", { orgId: actor.orgId });
    return actor;
  };

  return new Elysia({ name: "routes/egress", prefix: "/api/v1" })
    .get(
      "/orgs/:org/egress",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.getPolicy(org.id);
      },
      { response: { 200: Policy }, detail: { tags: ["egress"], summary: "An organization's egress policy", security: bearer } },
    )
    .put(
      "/orgs/:org/egress/mode",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.setMode(org.id, body.mode, actor);
      },
      { body: t.Object({ mode: Mode }, { additionalProperties: false }), response: { 200: Policy }, detail: { tags: ["egress"], summary: "Set the mode: off, monitor (log would-be drops) or enforce (owners)", security: bearer } },
    )
    .put(
      "/orgs/:org/egress/default",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.setDefault(org.id, body.action, actor);
      },
      { body: t.Object({ action: Action }, { additionalProperties: false }), response: { 200: Policy }, detail: { tags: ["egress"], summary: "Set the default rule for '*' (owners)", security: bearer } },
    )
    .post(
      "/orgs/:org/egress/rules",
      async ({ request, params, body, set }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        set.status = 201;
        return egress.addRule(org.id, body, actor);
      },
      {
        body: t.Object(
          {
            action: Action,
            target: t.String({ minLength: 1, maxLength: 260, description: "address, CIDR, hostname, or *.domain (names strictly below domain, not the apex)" }),
            ports: t.Optional(t.Nullable(t.String({ maxLength: 200, description: "e.g. 443 or 80,443 or 8000-8100 (TCP and UDP); omitted: every port" }))),
            comment: t.Optional(t.String({ maxLength: 500 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Rule },
        detail: { tags: ["egress"], summary: "Add a rule (owners)", security: bearer },
      },
    )
    .delete(
      "/orgs/:org/egress/rules/:ref",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.removeRule(org.id, decodeURIComponent(params.ref), actor);
      },
      { response: { 200: t.Array(Rule) }, detail: { tags: ["egress"], summary: "Remove a rule by id, or every rule with that target (owners)", security: bearer } },
    )
    .get(
      "/orgs/:org/egress/hosts",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.listHosts(org.id);
      },
      { response: { 200: t.Array(Host) }, detail: { tags: ["egress"], summary: "Runner hosts and what their agents last applied", security: bearer } },
    )
    .post(
      "/orgs/:org/egress/hosts",
      async ({ request, params, body, set }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        set.status = 201;
        return egress.addHost(org.id, body, actor);
      },
      {
        body: t.Object({ name: HostName, scopes: Scopes }, { additionalProperties: false }),
        response: { 201: t.Object({ host: Host, token: t.String({ description: "the agent token, shown once" }) }) },
        detail: { tags: ["egress"], summary: "Register a runner host; returns its agent token once (owners)", security: bearer },
      },
    )
    .put(
      "/orgs/:org/egress/hosts/:id/scopes",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        hostIn(org.id, params.id);
        return egress.setHostScopes(params.id, body.scopes, actor);
      },
      { body: t.Object({ scopes: Scopes }, { additionalProperties: false }), response: { 200: Host }, detail: { tags: ["egress"], summary: "Change a runner host's scopes (owners)", security: bearer } },
    )
    .delete(
      "/orgs/:org/egress/hosts/:id",
      async ({ request, params, set }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        hostIn(org.id, params.id);
        egress.removeHost(params.id, actor);
        set.status = 204;
      },
      { detail: { tags: ["egress"], summary: "Remove a runner host and revoke its agent token (owners)", security: bearer } },
    )
    .get(
      "/orgs/:org/egress/events",
      async ({ request, params, query }) => {
        const actor = await ctx.actorOf(request);
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.listEvents(org.id, query.action ? { action: query.action } : {});
      },
      {
        query: t.Object({ action: t.Optional(EventAction) }), response: { 200: t.Array(Event) }, detail: { tags: ["egress"], summary: "What was (or, in monitor mode, would have been) blocked, with counts", security: bearer } },
    )
    .get(
      "/egress/local-hosts",
      async ({ request }) => {
        authorize(await ctx.actorOf(request), "egress:local");
        return egress.listLocalHosts();
      },
      { response: { 200: t.Array(Host) }, detail: { tags: ["egress"], summary: "Runner hosts serve enforces on the appliance host (egress.local_agent), of every organization (administrator)", security: bearer } },
    )
    .put(
      "/egress/local-hosts/:id",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "egress:local");
        return egress.designateLocal(params.id, body.scopes, actor);
      },
      {
        body: t.Object({ scopes: Scopes }, { additionalProperties: false }),
        response: { 200: Host },
        detail: { tags: ["egress"], summary: "Designate a runner host local: serve enforces its organization's policy on the appliance host, over these scopes (administrator)", security: bearer },
      },
    )
    .delete(
      "/egress/local-hosts/:id",
      async ({ request, params, set }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "egress:local");
        egress.clearLocal(params.id, actor);
        set.status = 204;
      },
      { detail: { tags: ["egress"], summary: "End a local designation (administrator)", security: bearer } },
    )
    .get(
      "/egress/agent/policy",
      async ({ request, query }) => {
        const agent = await agentOf(request);
        egress.touchHost(agent.hostId);
        const waitMs = Math.min(Number(query.wait ?? 0), 55) * 1000;
        if (waitMs > 0) holdOpen(request); // a long poll outlasts the server's idle timeout
        return egress.waitForPolicy(agent.hostId, query.etag ?? null, waitMs, request.signal);
      },
      {
        query: t.Object({ etag: t.Optional(t.String({ maxLength: 64 })), wait: t.Optional(t.Numeric({ minimum: 0, maximum: 55 })) }),
        detail: { tags: ["egress"], summary: "Agent: this host's policy; with etag and wait, answers when it changes (long poll)", security: bearer },
      },
    )
    .post(
      "/egress/agent/status",
      async ({ request, body, set }) => {
        const agent = await agentOf(request);
        egress.reportStatus(agent.hostId, body);
        set.status = 204;
      },
      {
        body: t.Object(
          {
            etag: t.String({ maxLength: 64 }),
            ok: t.Boolean(),
            error: t.Optional(t.Nullable(t.String({ maxLength: 4000 }))),
            dns_resolvers: t.Optional(t.Array(t.String({ maxLength: 64 }), { maxItems: 16, description: "the resolvers allowed for DNS only (53/udp, 53/tcp)" })),
          },
          { additionalProperties: false },
        ),
        detail: { tags: ["egress"], summary: "Agent: what it applied", security: bearer },
      },
    )
    .post(
      "/egress/agent/events",
      async ({ request, body }) => {
        const agent = await agentOf(request);
        return { accepted: egress.reportEvents(agent.hostId, body.events) };
      },
      {
        body: t.Object(
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
        ),
        detail: { tags: ["egress"], summary: "Agent: would-be (or actual) blocks, deduplicated", security: bearer },
      },
    );
}
