/**
 * @module api/routes/egress
 * An organization's egress policy, its runner hosts and what their agents report (owners edit,
 * members read), the agent's own endpoints (an agent token: its host's policy by long
 * poll, apply status, would-be blocks), and the administrator's designation of runner hosts
 * that `serve` enforces on the appliance host itself.
 */
import { Elysia, t } from "elysia";
import { authorize, type Actor } from "../../auth/index.ts";
import {
  AgentEvents,
  AgentPolicyQuery,
  AgentStatus,
  DefaultSet,
  Destination,
  Event,
  EventsQuery,
  Host,
  HostCreate,
  HostCreated,
  ModeSet,
  Policy,
  Rule,
  RuleCreate,
  RuleUpdate,
  ScopesSet,
} from "../../egress/models.ts";
import type { EgressService } from "../../egress/service.ts";
import { ForbiddenError, NotFoundError } from "../../errors.ts";
import { actorMacro } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";
import { holdOpen } from "../context.ts";

const bearer = [{ bearer: [] }];

type EgressRoutesContext = IdentityContext & { egress: EgressService };

/** An organization's egress policy and its rules. */
export function egressRoutes(ctx: EgressRoutesContext) {
  const { egress } = ctx;
  const orgOf = (ref: string) => ctx.orgs.get(ref);
  return new Elysia({ name: "routes/egress", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/orgs/:org/egress",
      ({ actor, params }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.getPolicy(org.id);
      },
      {
        actor: true,
        response: { 200: Policy },
        detail: { tags: ["egress"], summary: "An organization's egress policy", security: bearer },
      },
    )
    .put(
      "/orgs/:org/egress/mode",
      ({ actor, params, body }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.setMode(org.id, body.mode, actor);
      },
      {
        actor: true,
        body: ModeSet,
        response: { 200: Policy },
        detail: {
          tags: ["egress"],
          summary: "Set the mode: off, monitor (log would-be drops) or enforce (owners)",
          security: bearer,
        },
      },
    )
    .put(
      "/orgs/:org/egress/default",
      ({ actor, params, body }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.setDefault(org.id, body.action, actor);
      },
      {
        actor: true,
        body: DefaultSet,
        response: { 200: Policy },
        detail: { tags: ["egress"], summary: "Set the default rule for '*' (owners)", security: bearer },
      },
    )
    .post(
      "/orgs/:org/egress/rules",
      ({ actor, params, body, set }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        set.status = 201;
        return egress.addRule(org.id, body, actor);
      },
      {
        actor: true,
        body: RuleCreate,
        response: { 201: Rule },
        detail: { tags: ["egress"], summary: "Add a rule (owners)", security: bearer },
      },
    )
    .patch(
      "/orgs/:org/egress/rules/:ref",
      ({ actor, params, body }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.updateRule(org.id, decodeURIComponent(params.ref), body, actor);
      },
      {
        actor: true,
        body: RuleUpdate,
        response: { 200: Rule },
        detail: {
          tags: ["egress"],
          summary: "Change a rule's action, target, ports or comment (owners); order never matters: deny wins",
          security: bearer,
        },
      },
    )
    .delete(
      "/orgs/:org/egress/rules/:ref",
      ({ actor, params }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        return egress.removeRule(org.id, decodeURIComponent(params.ref), actor);
      },
      {
        actor: true,
        response: { 200: t.Array(Rule) },
        detail: {
          tags: ["egress"],
          summary: "Remove a rule by id, or every rule with that target (owners)",
          security: bearer,
        },
      },
    );
}

/** Runner hosts of an organization, their events, and the administrator's local designations. */
export function egressHostRoutes(ctx: EgressRoutesContext) {
  const { egress } = ctx;
  const orgOf = (ref: string) => ctx.orgs.get(ref);
  const hostIn = (orgId: string, hostId: string) => {
    const h = egress.getHost(hostId);
    if (h.org_id !== orgId) throw new NotFoundError("no such runner host");
    return h;
  };
  return new Elysia({ name: "routes/egress/hosts", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/orgs/:org/egress/hosts",
      ({ actor, params }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.listHosts(org.id);
      },
      {
        actor: true,
        response: { 200: t.Array(Host) },
        detail: { tags: ["egress"], summary: "Runner hosts and what their agents last applied", security: bearer },
      },
    )
    .post(
      "/orgs/:org/egress/hosts",
      ({ actor, params, body, set }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        set.status = 201;
        return egress.addHost(org.id, body, actor);
      },
      {
        actor: true,
        body: HostCreate,
        response: { 201: HostCreated },
        detail: {
          tags: ["egress"],
          summary: "Register a runner host; returns its agent token once (owners)",
          security: bearer,
        },
      },
    )
    .put(
      "/orgs/:org/egress/hosts/:id/scopes",
      ({ actor, params, body }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        hostIn(org.id, params.id);
        return egress.setHostScopes(params.id, body.scopes, actor);
      },
      {
        actor: true,
        body: ScopesSet,
        response: { 200: Host },
        detail: { tags: ["egress"], summary: "Change a runner host's scopes (owners)", security: bearer },
      },
    )
    .delete(
      "/orgs/:org/egress/hosts/:id",
      ({ actor, params, set }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:manage", { orgId: org.id });
        hostIn(org.id, params.id);
        egress.removeHost(params.id, actor);
        set.status = 204;
      },
      {
        actor: true,
        detail: {
          tags: ["egress"],
          summary: "Remove a runner host and revoke its agent token (owners)",
          security: bearer,
        },
      },
    )
    .get(
      "/orgs/:org/egress/events",
      ({ actor, params, query }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.listEvents(org.id, query.action ? { action: query.action } : {});
      },
      {
        actor: true,
        query: EventsQuery,
        response: { 200: t.Array(Event) },
        detail: {
          tags: ["egress"],
          summary: "What was (or, in monitor mode, would have been) blocked, with counts",
          security: bearer,
        },
      },
    )
    .get(
      "/orgs/:org/egress/events/destinations",
      ({ actor, params }) => {
        const org = orgOf(params.org);
        authorize(actor, "egress:read", { orgId: org.id });
        return egress.eventDestinations(org.id);
      },
      {
        actor: true,
        response: { 200: t.Array(Destination) },
        detail: {
          tags: ["egress"],
          summary:
            "Blocked and would-block connections grouped by destination and port, with counts and the allow rule that now lets each through",
          security: bearer,
        },
      },
    )
    .get(
      "/egress/local-hosts",
      ({ actor }) => {
        authorize(actor, "egress:local");
        return egress.listLocalHosts();
      },
      {
        actor: true,
        response: { 200: t.Array(Host) },
        detail: {
          tags: ["egress"],
          summary:
            "Runner hosts serve enforces on the appliance host (egress.local_agent), of every organization (administrator)",
          security: bearer,
        },
      },
    )
    .put(
      "/egress/local-hosts/:id",
      ({ actor, params, body }) => {
        authorize(actor, "egress:local");
        return egress.designateLocal(params.id, body.scopes, actor);
      },
      {
        actor: true,
        body: ScopesSet,
        response: { 200: Host },
        detail: {
          tags: ["egress"],
          summary:
            "Designate a runner host local: serve enforces its organization's policy on the appliance host, over these scopes (administrator)",
          security: bearer,
        },
      },
    )
    .delete(
      "/egress/local-hosts/:id",
      ({ actor, params, set }) => {
        authorize(actor, "egress:local");
        egress.clearLocal(params.id, actor);
        set.status = 204;
      },
      {
        actor: true,
        detail: { tags: ["egress"], summary: "End a local designation (administrator)", security: bearer },
      },
    );
}

/** The agent's own endpoints: an agent token, its host's policy (long poll), status, events. */
export function egressAgentRoutes(ctx: EgressRoutesContext) {
  const { egress } = ctx;
  const agentOf = (actor: Actor) => {
    if (actor.kind !== "agent") throw new ForbiddenError("this endpoint takes an agent token (slw_a_…)");
    authorize(actor, "egress:agent", { orgId: actor.orgId });
    return actor;
  };
  return new Elysia({ name: "routes/egress/agent", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/egress/agent/policy",
      ({ actor, request, query }) => {
        const agent = agentOf(actor);
        egress.touchHost(agent.hostId);
        const waitMs = Math.min(Number(query.wait ?? 0), 55) * 1000;
        if (waitMs > 0) holdOpen(request); // a long poll outlasts the server's idle timeout
        return egress.waitForPolicy(agent.hostId, query.etag ?? null, waitMs, request.signal);
      },
      {
        actor: true,
        query: AgentPolicyQuery,
        detail: {
          tags: ["egress"],
          summary: "Agent: this host's policy; with etag and wait, answers when it changes (long poll)",
          security: bearer,
        },
      },
    )
    .post(
      "/egress/agent/status",
      ({ actor, body, set }) => {
        const agent = agentOf(actor);
        egress.reportStatus(agent.hostId, body);
        set.status = 204;
      },
      {
        actor: true,
        body: AgentStatus,
        detail: { tags: ["egress"], summary: "Agent: what it applied", security: bearer },
      },
    )
    .post(
      "/egress/agent/events",
      ({ actor, body }) => {
        const agent = agentOf(actor);
        return { accepted: egress.reportEvents(agent.hostId, body.events) };
      },
      {
        actor: true,
        body: AgentEvents,
        detail: { tags: ["egress"], summary: "Agent: would-be (or actual) blocks, deduplicated", security: bearer },
      },
    );
}
