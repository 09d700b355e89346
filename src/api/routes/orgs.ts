/**
 * @module api/routes/orgs
 * Organizations, their members and their audit log; users (administrator only).
 */
import { Elysia, t } from "elysia";
import { BodyInteger } from "../schema.ts";
import { authorize } from "../../auth/index.ts";
import { QUOTA_KEYS, QUOTA_RANGES, type QuotaKey } from "../../orgs/quotas.ts";
import { USERNAME_PATTERN } from "../../orgs/service.ts";
import { PreconditionError } from "../../errors.ts";
import type { IdentityContext } from "../identity.ts";

const Slug = t.String({ pattern: "^[a-z0-9][a-z0-9-]{1,38}$", description: "lowercase letters, digits and dashes; 2-39 characters" });
const Name = t.String({ minLength: 1, maxLength: 100 });
const Username = t.String({ pattern: USERNAME_PATTERN });
const RoleT = t.Union([t.Literal("owner"), t.Literal("user")]);
const Org = t.Object({ id: t.String(), slug: t.String(), name: t.String(), created_at: t.String() });
const MemberT = t.Object({ user_id: t.String(), username: t.String(), role: RoleT, created_at: t.String() });
const AuditQuery = t.Object({ limit: t.Optional(t.Numeric({ minimum: 1, maximum: 500 })), before: t.Optional(t.Numeric({ minimum: 1 })) });
const bearer = [{ bearer: [] }];
const quotaValue = (k: QuotaKey) => BodyInteger({ minimum: QUOTA_RANGES[k].min, maximum: QUOTA_RANGES[k].max, description: QUOTA_RANGES[k].description });
const QuotaNumbers = t.Object(Object.fromEntries(QUOTA_KEYS.map((k) => [k, quotaValue(k)])) as Record<QuotaKey, ReturnType<typeof quotaValue>>);
const QuotaReportT = t.Object({
  limits: QuotaNumbers,
  defaults: QuotaNumbers,
  overrides: t.Partial(QuotaNumbers),
  usage: t.Object({ projects: t.Integer(), running_builders: t.Integer() }),
});
const QuotaPatch = t.Object(
  {
    max_projects: t.Optional(t.Nullable(quotaValue("max_projects"))),
    max_builder_cpus: t.Optional(t.Nullable(quotaValue("max_builder_cpus"))),
    max_builder_memory_mb: t.Optional(t.Nullable(quotaValue("max_builder_memory_mb"))),
    max_cache_size_gb: t.Optional(t.Nullable(quotaValue("max_cache_size_gb"))),
    max_running_builders: t.Optional(t.Nullable(quotaValue("max_running_builders"))),
  },
  { additionalProperties: false, description: "a number sets the quota for this organization; null returns it to the configured default" },
);

export function orgRoutes(ctx: IdentityContext) {
  const { orgs, audit } = ctx;
  const quotas = () => {
    if (!ctx.quotas) throw new PreconditionError("quotas are not available on this server");
    return ctx.quotas;
  };
  return new Elysia({ name: "routes/orgs", prefix: "/api/v1" })
    .get(
      "/orgs",
      async ({ request }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "visible:list");
        return orgs.listFor(actor);
      },
      {
      response: { 200: t.Array(Org) },
        detail: { tags: ["organizations"], summary: "Organizations the caller can see", security: bearer },
      },
    )
    .post(
      "/orgs",
      async ({ request, body, set }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "appliance:admin");
        set.status = 201;
        return orgs.create(body, actor);
      },
      {
        body: t.Object({ slug: Slug, name: Name, owner: t.Optional(Username) }, { additionalProperties: false }),
        response: { 201: Org },
        detail: { tags: ["organizations"], summary: "Create an organization (administrator); its owner is `owner` or the caller", security: bearer },
      },
    )
    .get(
      "/orgs/:org",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return org;
      },
      { response: { 200: Org }, detail: { tags: ["organizations"], summary: "An organization, by id or slug", security: bearer } },
    )
    .patch(
      "/orgs/:org",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "org:update", { orgId: org.id });
        return orgs.update(org.id, body, actor);
      },
      {
        body: t.Object({ name: t.Optional(Name) }, { additionalProperties: false }),
        response: { 200: Org },
        detail: { tags: ["organizations"], summary: "Rename an organization (owners)", security: bearer },
      },
    )
    .get(
      "/orgs/:org/builder-runtime",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return { oci_runtime: orgs.builderRuntime(org.id) };
      },
      { detail: { tags: ["organizations"], summary: "The OCI runtime the organization's builders run under (null: the engine's default)", security: bearer } },
    )
    .put(
      "/orgs/:org/builder-runtime",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        // A host-level choice (the runtime must be registered with the Docker engine): administrator
        // only — after the visibility check, so other tenants still get 404.
        authorize(actor, "org:read", { orgId: org.id });
        authorize(actor, "appliance:admin");
        orgs.setBuilderRuntime(org.id, body.oci_runtime, actor);
        return { oci_runtime: orgs.builderRuntime(org.id) };
      },
      {
        body: t.Object({ oci_runtime: t.Nullable(t.String({ pattern: "^[a-z0-9][a-z0-9._-]{0,62}$", description: "a runtime registered with the Docker engine, e.g. runsc or kata; null for the default" })) }, { additionalProperties: false }),
        detail: { tags: ["organizations"], summary: "Run the organization's builders under another OCI runtime, e.g. a VM-isolating one (administrator); applies to builders started from now on", security: bearer },
      },
    )
    .get(
      "/orgs/:org/quotas",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return quotas().report(org.id);
      },
      { response: { 200: QuotaReportT }, detail: { tags: ["organizations"], summary: "The organization's quotas (limits in force, defaults, overrides) and its usage", security: bearer } },
    )
    .put(
      "/orgs/:org/quotas",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "quota:manage", { orgId: org.id });
        return quotas().set(org.id, body, actor);
      },
      {
        body: QuotaPatch,
        response: { 200: QuotaReportT },
        detail: { tags: ["organizations"], summary: "Set or clear the organization's quotas (administrator); quotas not named stay as they are. Lowering one below the usage breaks nothing that exists", security: bearer },
      },
    )
    .get(
      "/orgs/:org/members",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "member:read", { orgId: org.id });
        return orgs.listMembers(org.id);
      },
      { response: { 200: t.Array(MemberT) }, detail: { tags: ["organizations"], summary: "Members and their roles", security: bearer } },
    )
    .post(
      "/orgs/:org/members",
      async ({ request, params, body, set }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "member:manage", { orgId: org.id });
        set.status = 201;
        return orgs.addMember(org.id, body.user, body.role, actor);
      },
      {
        body: t.Object({ user: Username, role: RoleT }, { additionalProperties: false }),
        response: { 201: MemberT },
        detail: { tags: ["organizations"], summary: "Add a member (owners)", security: bearer },
      },
    )
    .patch(
      "/orgs/:org/members/:user",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "member:manage", { orgId: org.id });
        return orgs.setRole(org.id, params.user, body.role, actor);
      },
      {
        body: t.Object({ role: RoleT }, { additionalProperties: false }),
        response: { 200: MemberT },
        detail: { tags: ["organizations"], summary: "Change a member's role (owners); the last owner stays owner", security: bearer },
      },
    )
    .delete(
      "/orgs/:org/members/:user",
      async ({ request, params, set }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "member:manage", { orgId: org.id });
        orgs.removeMember(org.id, params.user, actor);
        set.status = 204;
      },
      { detail: { tags: ["organizations"], summary: "Remove a member (owners); the last owner cannot be removed", security: bearer } },
    )
    .get(
      "/orgs/:org/audit",
      async ({ request, params, query }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "audit:read", { orgId: org.id });
        return audit.list({ orgId: org.id, limit: query.limit ?? 100, beforeId: query.before });
      },
      { query: AuditQuery, detail: { tags: ["audit"], summary: "The organization's audit log, newest first (owners)", security: bearer } },
    )
    .get(
      "/audit",
      async ({ request, query }) => {
        authorize(await ctx.actorOf(request), "appliance:admin");
        return audit.list({ limit: query.limit ?? 100, beforeId: query.before });
      },
      { query: AuditQuery, detail: { tags: ["audit"], summary: "The whole appliance's audit log (administrator)", security: bearer } },
    )
    .post(
      "/users",
      async ({ request, body, set }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "appliance:admin");
        if (body.password !== undefined) ctx.sessions.checkPassword(body.password);
        const user = orgs.createUser({ username: body.username, isAdmin: body.is_admin }, actor);
        if (body.password !== undefined) await ctx.sessions.setPassword(user.id, body.password);
        set.status = 201;
        return user;
      },
      {
        body: t.Object({ username: Username, is_admin: t.Optional(t.Boolean()), password: t.Optional(t.String({ maxLength: 1024 })) }, { additionalProperties: false }),
        response: { 201: t.Object({ id: t.String(), username: t.String(), is_admin: t.Boolean(), created_at: t.String() }) },
        detail: { tags: ["users"], summary: "Create a user (administrator), optionally with a password for the web UI", security: bearer },
      },
    );
}
