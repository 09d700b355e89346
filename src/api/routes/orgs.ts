/**
 * @module api/routes/orgs
 * Organizations, their members and their audit log; users (administrator only).
 */
import { Elysia, t } from "elysia";
import { authorize } from "../../auth/index.ts";
import {
  AuditEntry,
  AuditQuery,
  BuilderRuntimeSet,
  Member,
  MemberAdd,
  MemberPatch,
  Org,
  OrgCreate,
  OrgPatch,
  QuotaPatch,
  QuotaReport,
  User,
  UserCreate,
  UserPatch,
} from "../../orgs/models.ts";
import type { AuditFilter, AuditRecord } from "../../auth/audit.ts";
import { UserTokenReset } from "../../auth/models.ts";
import { InvalidInputError, PreconditionError } from "../../errors.ts";
import type { OrgsService } from "../../orgs/service.ts";
import { actorMacro } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

const bearer = [{ bearer: [] }];

export function orgRoutes(ctx: IdentityContext) {
  const { orgs } = ctx;
  const quotas = () => {
    if (!ctx.quotas) throw new PreconditionError("quotas are not available on this server");
    return ctx.quotas;
  };
  return new Elysia({ name: "routes/orgs", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/orgs",
      ({ actor }) => {
        authorize(actor, "visible:list");
        return orgs.listFor(actor);
      },
      {
        actor: true,
        response: { 200: t.Array(Org) },
        detail: { tags: ["organizations"], summary: "Organizations the caller can see", security: bearer },
      },
    )
    .post(
      "/orgs",
      ({ actor, body, set }) => {
        authorize(actor, "appliance:admin");
        set.status = 201;
        return orgs.create(body, actor);
      },
      {
        actor: true,
        body: OrgCreate,
        response: { 201: Org },
        detail: {
          tags: ["organizations"],
          summary: "Create an organization (administrator); its owner is `owner` or the caller",
          security: bearer,
        },
      },
    )
    .get(
      "/orgs/:org",
      ({ actor, params }) => {
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return org;
      },
      {
        actor: true,
        response: { 200: Org },
        detail: { tags: ["organizations"], summary: "An organization, by id or slug", security: bearer },
      },
    )
    .patch(
      "/orgs/:org",
      ({ actor, params, body }) => {
        const org = orgs.get(params.org);
        authorize(actor, "org:update", { orgId: org.id });
        return orgs.update(org.id, body, actor);
      },
      {
        actor: true,
        body: OrgPatch,
        response: { 200: Org },
        detail: { tags: ["organizations"], summary: "Rename an organization (owners)", security: bearer },
      },
    )
    .get(
      "/orgs/:org/builder-runtime",
      ({ actor, params }) => {
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return { oci_runtime: orgs.builderRuntime(org.id) };
      },
      {
        actor: true,
        detail: {
          tags: ["organizations"],
          summary: "The OCI runtime the organization's builders run under (null: the engine's default)",
          security: bearer,
        },
      },
    )
    .put(
      "/orgs/:org/builder-runtime",
      ({ actor, params, body }) => {
        const org = orgs.get(params.org);
        // A host-level choice (the runtime must be registered with the Docker engine): administrator
        // only — after the visibility check, so other tenants still get 404.
        authorize(actor, "org:read", { orgId: org.id });
        authorize(actor, "appliance:admin");
        orgs.setBuilderRuntime(org.id, body.oci_runtime, actor);
        return { oci_runtime: orgs.builderRuntime(org.id) };
      },
      {
        actor: true,
        body: BuilderRuntimeSet,
        detail: {
          tags: ["organizations"],
          summary:
            "Run the organization's builders under another OCI runtime, e.g. a VM-isolating one (administrator); applies to builders started from now on",
          security: bearer,
        },
      },
    )
    .get(
      "/orgs/:org/quotas",
      ({ actor, params }) => {
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return quotas().report(org.id);
      },
      {
        actor: true,
        response: { 200: QuotaReport },
        detail: {
          tags: ["organizations"],
          summary: "The organization's quotas (limits in force, defaults, overrides) and its usage",
          security: bearer,
        },
      },
    )
    .put(
      "/orgs/:org/quotas",
      ({ actor, params, body }) => {
        const org = orgs.get(params.org);
        authorize(actor, "quota:manage", { orgId: org.id });
        return quotas().set(org.id, body, actor);
      },
      {
        actor: true,
        body: QuotaPatch,
        response: { 200: QuotaReport },
        detail: {
          tags: ["organizations"],
          summary:
            "Set or clear the organization's quotas (administrator); quotas not named stay as they are. Lowering one below the usage breaks nothing that exists",
          security: bearer,
        },
      },
    );
}

/** An organization's members and audit log; the appliance's users and audit log (administrator). */
export function memberRoutes(ctx: IdentityContext) {
  const { orgs, audit } = ctx;
  return new Elysia({ name: "routes/members", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/orgs/:org/members",
      ({ actor, params }) => {
        const org = orgs.get(params.org);
        authorize(actor, "member:read", { orgId: org.id });
        return orgs.listMembers(org.id);
      },
      {
        actor: true,
        response: { 200: t.Array(Member) },
        detail: { tags: ["organizations"], summary: "Members and their roles", security: bearer },
      },
    )
    .post(
      "/orgs/:org/members",
      ({ actor, params, body, set }) => {
        const org = orgs.get(params.org);
        authorize(actor, "member:manage", { orgId: org.id });
        set.status = 201;
        return orgs.addMember(org.id, body.user, body.role, actor);
      },
      {
        actor: true,
        body: MemberAdd,
        response: { 201: Member },
        detail: { tags: ["organizations"], summary: "Add a member (owners)", security: bearer },
      },
    )
    .patch(
      "/orgs/:org/members/:user",
      ({ actor, params, body }) => {
        const org = orgs.get(params.org);
        authorize(actor, "member:manage", { orgId: org.id });
        return orgs.setRole(org.id, params.user, body.role, actor);
      },
      {
        actor: true,
        body: MemberPatch,
        response: { 200: Member },
        detail: {
          tags: ["organizations"],
          summary: "Change a member's role (owners); the last owner stays owner",
          security: bearer,
        },
      },
    )
    .delete(
      "/orgs/:org/members/:user",
      ({ actor, params, set }) => {
        const org = orgs.get(params.org);
        authorize(actor, "member:manage", { orgId: org.id });
        orgs.removeMember(org.id, params.user, actor);
        set.status = 204;
      },
      {
        actor: true,
        detail: {
          tags: ["organizations"],
          summary: "Remove a member (owners); the last owner cannot be removed",
          security: bearer,
        },
      },
    )
    .get(
      "/orgs/:org/audit",
      ({ actor, params, query }) => {
        const org = orgs.get(params.org);
        authorize(actor, "audit:read", { orgId: org.id });
        const entries = audit.list({
          ...auditFilter(orgs, query),
          orgId: org.id,
          limit: query.limit ?? 100,
          beforeId: query.before,
        });
        return withNames(orgs, entries);
      },
      {
        actor: true,
        query: AuditQuery,
        response: { 200: t.Array(AuditEntry) },
        detail: { tags: ["audit"], summary: "The organization's audit log, newest first (owners)", security: bearer },
      },
    )
    .get(
      "/audit",
      ({ actor, query }) => {
        authorize(actor, "appliance:admin");
        const entries = audit.list({ ...auditFilter(orgs, query), limit: query.limit ?? 100, beforeId: query.before });
        return withNames(orgs, entries);
      },
      {
        actor: true,
        query: AuditQuery,
        response: { 200: t.Array(AuditEntry) },
        detail: { tags: ["audit"], summary: "The whole appliance's audit log (administrator)", security: bearer },
      },
    )
    .get(
      "/users",
      ({ actor }) => {
        authorize(actor, "appliance:admin");
        return orgs.listUsers();
      },
      {
        actor: true,
        response: { 200: t.Array(User) },
        detail: { tags: ["users"], summary: "Every user of the appliance (administrator)", security: bearer },
      },
    )
    .patch(
      "/users/:user",
      ({ actor, params, body }) => {
        authorize(actor, "appliance:admin");
        return orgs.setAdmin(params.user, body.is_admin, actor);
      },
      {
        actor: true,
        body: UserPatch,
        response: { 200: User },
        detail: {
          tags: ["users"],
          summary: "Make a user administrator or not (administrator); the last administrator stays one",
          security: bearer,
        },
      },
    )
    .post(
      "/users/:user/token",
      ({ actor, params, request, set }) => {
        authorize(actor, "appliance:admin");
        const user = orgs.getUser(params.user);
        const reset = ctx.tokens.resetUserTokens(user.id, actor, ctx.ip(request));
        set.status = 201;
        return { ...reset.metadata, token: reset.token, revoked: reset.revoked };
      },
      {
        actor: true,
        response: { 201: UserTokenReset },
        detail: {
          tags: ["users"],
          summary:
            "Reset a user's token (administrator): their user tokens are revoked and a new one is returned, only here; their web sessions stay",
          security: bearer,
        },
      },
    )
    .post(
      "/users",
      async ({ actor, body, set }) => {
        authorize(actor, "appliance:admin");
        if (body.password !== undefined) ctx.sessions.checkPassword(body.password);
        const user = orgs.createUser({ username: body.username, isAdmin: body.is_admin }, actor);
        if (body.password !== undefined) await ctx.sessions.setPassword(user.id, body.password);
        set.status = 201;
        return user;
      },
      {
        actor: true,
        body: UserCreate,
        response: { 201: User },
        detail: {
          tags: ["users"],
          summary: "Create a user (administrator), optionally with a password for the web UI",
          security: bearer,
        },
      },
    );
}

/**
 * The audit query as the log stores it: a username becomes its actor label (the log keeps ids, so
 * a renamed user's past stays theirs); times become the UTC strings the log compares.
 */
function auditFilter(
  orgs: Pick<OrgsService, "userIdByUsername">,
  q: { actor?: string; action?: string; since?: string; until?: string },
): AuditFilter {
  const time = (name: "since" | "until") => {
    const v = q[name];
    if (v === undefined) return undefined;
    const ms = Date.parse(v);
    if (Number.isNaN(ms))
      throw new InvalidInputError(`${name} is not a valid time`, [
        { pointer: `/${name}`, detail: "an RFC 3339 time, e.g. 2026-01-31T12:00:00Z" },
      ]);
    return new Date(ms).toISOString();
  };
  const since = time("since");
  const until = time("until");
  if (since && until && since > until)
    throw new InvalidInputError("since is after until", [{ pointer: "/since", detail: "must not be after until" }]);
  let actors: string[] | undefined;
  if (q.actor !== undefined) {
    const userId = orgs.userIdByUsername(q.actor);
    actors = userId ? [q.actor, `user:${userId}`] : [q.actor];
  }
  return { actors, action: q.action, since, until };
}

/** Entries with the names of the users who acted, and of the user or organization acted on, where they still exist. */
function withNames(orgs: Pick<OrgsService, "displayNames">, entries: AuditRecord[]) {
  const userOf = (label: string) => (label.startsWith("user:") ? label.slice(5) : null);
  const named = (id: string | null) => (id && /^(usr|org)_/.test(id) ? id : null);
  const names = orgs.displayNames(entries.flatMap((e) => [userOf(e.actor), named(e.target)]).filter((x) => x !== null));
  return entries.map((e) => {
    const actorId = userOf(e.actor);
    return {
      ...e,
      actor_name: actorId ? (names.get(actorId) ?? null) : null,
      target_name: e.target ? (names.get(e.target) ?? null) : null,
    };
  });
}
