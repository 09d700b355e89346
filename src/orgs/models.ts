/**
 * @module orgs/models
 * The organizations API's request and response shapes (organizations, members, quotas, users,
 * the audit log's query), defined once: the routes validate with them, the OpenAPI document
 * describes them, and the CLI takes its types from them. Imports no service.
 */
import { t, type Static } from "elysia";
import { BodyInteger } from "../http/schema.ts";

/** Usernames: a letter or digit, then letters, digits, dot, underscore, dash; 64 at most. */
export const USERNAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

export const QUOTA_KEYS = [
  "max_projects",
  "max_builder_cpus",
  "max_builder_memory_mb",
  "max_cache_size_gb",
  "max_running_builders",
] as const;
export type QuotaKey = (typeof QUOTA_KEYS)[number];
/** Allowed range of each quota (whole numbers); the database checks the same. */
export const QUOTA_RANGES: Record<QuotaKey, { min: number; max: number; description: string }> = {
  max_projects: { min: 0, max: 100_000, description: "projects in the organization" },
  max_builder_cpus: { min: 1, max: 256, description: "CPUs of one builder (a project's builder_cpus)" },
  max_builder_memory_mb: {
    min: 256,
    max: 1_048_576,
    description: "memory of one builder, MB (a project's builder_memory_mb)",
  },
  max_cache_size_gb: {
    min: 1,
    max: 10_000,
    description: "cache size of one project per platform, GB (a project's cache_size_gb)",
  },
  max_running_builders: {
    min: 0,
    max: 1000,
    description: "builders of the organization running at once (idle ones count until stopped)",
  },
};

const Slug = t.String({
  pattern: "^[a-z0-9][a-z0-9-]{1,38}$",
  description: "lowercase letters, digits and dashes; 2-39 characters",
});
const OrgName = t.String({ minLength: 1, maxLength: 100 });
const Username = t.String({ pattern: USERNAME_PATTERN });
export const Role = t.Union([t.Literal("owner"), t.Literal("user")]);

export const Org = t.Object({ id: t.String(), slug: t.String(), name: t.String(), created_at: t.String() });
export type OrgView = Static<typeof Org>;
/** POST /orgs */
export const OrgCreate = t.Object(
  { slug: Slug, name: OrgName, owner: t.Optional(Username) },
  { additionalProperties: false },
);
/** PATCH /orgs/{org} */
export const OrgPatch = t.Object({ name: t.Optional(OrgName) }, { additionalProperties: false });

export const BuilderRuntime = t.Object({
  oci_runtime: t.Nullable(
    t.String({
      pattern: "^[a-z0-9][a-z0-9._-]{0,62}$",
      description: "a runtime registered with the Docker engine, e.g. runsc or kata; null for the default",
    }),
  ),
});
/** PUT /orgs/{org}/builder-runtime */
export const BuilderRuntimeSet = t.Object(BuilderRuntime.properties, { additionalProperties: false });

export const Member = t.Object({ user_id: t.String(), username: t.String(), role: Role, created_at: t.String() });
export type MemberView = Static<typeof Member>;
/** POST /orgs/{org}/members */
export const MemberAdd = t.Object({ user: Username, role: Role }, { additionalProperties: false });
/** PATCH /orgs/{org}/members/{user} */
export const MemberPatch = t.Object({ role: Role }, { additionalProperties: false });

const quotaValue = (k: QuotaKey) =>
  BodyInteger({ minimum: QUOTA_RANGES[k].min, maximum: QUOTA_RANGES[k].max, description: QUOTA_RANGES[k].description });
const QuotaNumbers = t.Object(
  Object.fromEntries(QUOTA_KEYS.map((k) => [k, quotaValue(k)])) as Record<QuotaKey, ReturnType<typeof quotaValue>>,
);
export const QuotaReport = t.Object({
  limits: QuotaNumbers,
  defaults: QuotaNumbers,
  overrides: t.Partial(QuotaNumbers),
  usage: t.Object({ projects: t.Integer(), running_builders: t.Integer() }),
});
export type QuotaReportView = Static<typeof QuotaReport>;
/** PUT /orgs/{org}/quotas */
export const QuotaPatch = t.Object(
  {
    max_projects: t.Optional(t.Nullable(quotaValue("max_projects"))),
    max_builder_cpus: t.Optional(t.Nullable(quotaValue("max_builder_cpus"))),
    max_builder_memory_mb: t.Optional(t.Nullable(quotaValue("max_builder_memory_mb"))),
    max_cache_size_gb: t.Optional(t.Nullable(quotaValue("max_cache_size_gb"))),
    max_running_builders: t.Optional(t.Nullable(quotaValue("max_running_builders"))),
  },
  {
    additionalProperties: false,
    description: "a number sets the quota for this organization; null returns it to the configured default",
  },
);

const RFC3339 = "^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([Zz]|[+-]\\d{2}:\\d{2})$";
/** GET /orgs/{org}/audit and GET /audit */
export const AuditQuery = t.Object({
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 500 })),
  before: t.Optional(t.Numeric({ minimum: 1, description: "entries older than this id (the next page)" })),
  actor: t.Optional(
    t.String({
      minLength: 1,
      maxLength: 300,
      description: "who acted: a username, or the actor as the log shows it (user:usr_…, token:tok_…, anonymous)",
    }),
  ),
  action: t.Optional(
    t.String({
      pattern: "^[a-z0-9][a-z0-9._-]{0,63}$",
      description: "an action (member.add), or a family of them (member or member.)",
    }),
  ),
  since: t.Optional(t.String({ pattern: RFC3339, description: "entries at or after this time (RFC 3339)" })),
  until: t.Optional(t.String({ pattern: RFC3339, description: "entries at or before this time (RFC 3339)" })),
});
export const AuditEntry = t.Object({
  id: t.Integer(),
  at: t.String(),
  org_id: t.Nullable(t.String()),
  actor: t.String(),
  /** The username when the actor is a user that still exists. */
  actor_name: t.Nullable(t.String()),
  action: t.String(),
  target: t.Nullable(t.String()),
  /** The username or organization slug when the target is a user or organization that still exists. */
  target_name: t.Nullable(t.String()),
  outcome: t.Union([t.Literal("success"), t.Literal("failure")]),
  ip: t.Nullable(t.String()),
  details: t.Record(t.String(), t.Unknown()),
});
export type AuditEntryView = Static<typeof AuditEntry>;

/** POST /users */
export const UserCreate = t.Object(
  { username: Username, is_admin: t.Optional(t.Boolean()), password: t.Optional(t.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);
export const User = t.Object({ id: t.String(), username: t.String(), is_admin: t.Boolean(), created_at: t.String() });
export type UserView = Static<typeof User>;
/** PATCH /users/{user}: make or unmake an administrator (the last one stays). */
export const UserPatch = t.Object({ is_admin: t.Boolean() }, { additionalProperties: false });
