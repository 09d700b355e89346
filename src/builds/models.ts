/**
 * @module builds/models
 * The builds API's shapes over REST (a build, its steps, a project's page of builds, its
 * builders and cache), defined once: the routes validate with them, the OpenAPI document
 * describes them, and the CLI takes its types from them. Imports no service.
 */
import { t, type Static } from "elysia";

export const Build = t.Object({
  id: t.String(),
  project_id: t.String(),
  org_id: t.String(),
  status: t.Union([
    t.Literal("created"),
    t.Literal("running"),
    t.Literal("finished"),
    t.Literal("failed"),
    t.Literal("canceled"),
    t.Literal("expired"),
  ]),
  started_by: t.String(),
  options: t.Array(t.Any()),
  platforms: t.Array(t.String()),
  error: t.Nullable(t.String()),
  created_at: t.String(),
  started_at: t.Nullable(t.String()),
  finished_at: t.Nullable(t.String()),
  deadline_at: t.String(),
  cancel_requested_at: t.Nullable(t.String()),
  log_bytes: t.Integer(),
  log_truncated: t.Boolean(),
  build_url: t.String(),
  // What a person reads in a list (the REST routes always fill these; optional so that other
  // producers of this shape stay valid).
  started_by_kind: t.Optional(
    t.Union([t.Literal("user"), t.Literal("token"), t.Literal("ci"), t.Literal("appliance")], {
      description: "who started it: a person, a token, a CI job (OIDC), or the appliance",
    }),
  ),
  started_by_name: t.Optional(
    t.String({ description: 'a username, a token\'s name, or "CI: <provider> <repository>"' }),
  ),
  project_name: t.Optional(t.String()),
  duration_seconds: t.Optional(
    t.Nullable(t.Number({ description: "from start (or creation) to the end; so far while it runs" })),
  ),
  step_count: t.Optional(t.Integer()),
  cached_step_count: t.Optional(t.Integer({ description: "steps BuildKit answered from the cache" })),
  outputs: t.Optional(
    t.Array(t.String(), {
      description: 'what the build produces, per its options: "pushed", "saved", "loaded", "exported: <type>"',
    }),
  ),
});
export type BuildView = Static<typeof Build>;
export const Step = t.Object({
  digest: t.String(),
  name: t.String(),
  cached: t.Boolean(),
  started_at: t.Nullable(t.String()),
  completed_at: t.Nullable(t.String()),
  error: t.Nullable(t.String()),
});
export type StepView = Static<typeof Step>;
/** One log line as a build's live events carry it (event `log`; its event id resumes after it). */
export const LogLine = t.Object({
  vertex: t.String({ description: "the step (BuildKit vertex digest) that wrote it" }),
  stream: t.Integer({ description: "1 stdout, 2 stderr" }),
  at: t.String(),
  text: t.String(),
});
export type LogLineView = Static<typeof LogLine>;
export const BuildParams = t.Object({ id: t.String({ pattern: "^bld_[a-z2-7]{20}$", description: "a build id" }) });
export const BuildPageQuery = t.Object(
  { limit: t.Optional(t.Integer({ minimum: 1, maximum: 200 })), cursor: t.Optional(t.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
export const BuildPage = t.Object({ builds: t.Array(Build), next_cursor: t.Nullable(t.String()) });
export type BuildPageView = Static<typeof BuildPage>;

const STATUSES = ["created", "running", "finished", "failed", "canceled", "expired"] as const;
/** An instant in a list's filter: RFC 3339 (a date alone means its midnight UTC). */
const Instant = t.String({
  pattern: "^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2}))?$",
  description: "RFC 3339 date-time, or a date (midnight UTC)",
});
const listFilters = {
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 200 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
  status: t.Optional(
    t.String({
      pattern: `^(${STATUSES.join("|")})(,(${STATUSES.join("|")}))*$`,
      description: "statuses, comma-separated",
    }),
  ),
  started_by: t.Optional(
    t.Union([t.Literal("user"), t.Literal("token"), t.Literal("ci")], {
      description: "who started them: a person, a token, or a CI job",
    }),
  ),
  since: t.Optional(Instant),
  until: t.Optional(Instant),
};
/** GET /projects/:id/builds */
export const ProjectBuildsQuery = t.Object(listFilters, { additionalProperties: false });
/** GET /orgs/:org/builds */
export const OrgBuildsQuery = t.Object(
  {
    ...listFilters,
    project: t.Optional(
      t.String({
        pattern: "^prj_[a-z2-7]+(,prj_[a-z2-7]+)*$",
        maxLength: 2000,
        description: "project ids, comma-separated",
      }),
    ),
  },
  { additionalProperties: false },
);
export const OrgParams = t.Object({ org: t.String({ maxLength: 200, description: "organization id or slug" }) });

export const BuildEventsQuery = t.Object(
  {
    log_batch: t.Optional(
      t.Integer({
        minimum: 1,
        maximum: 1000,
        description:
          "log lines as `logs` events of up to this many lines each (an array; its id is its last line's), the stored log and lines that arrive together, instead of one `log` event per line (1, the default)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const BuildStatsQuery = t.Object(
  {
    days: t.Optional(t.Integer({ minimum: 1, maximum: 365, description: "builds per day over this many days (30)" })),
    last: t.Optional(t.Integer({ minimum: 1, maximum: 500, description: "durations of this many last builds (50)" })),
  },
  { additionalProperties: false },
);
export const BuildStats = t.Object({
  recent: t.Array(
    t.Object({
      id: t.String(),
      created_at: t.String(),
      status: t.String(),
      duration_seconds: t.Nullable(t.Number()),
      step_count: t.Integer(),
      cached_step_count: t.Integer(),
      cache_hit_ratio: t.Nullable(t.Number({ description: "cached steps / steps; null without steps" })),
    }),
    { description: "the last builds that ended, oldest first" },
  ),
  per_day: t.Array(t.Object({ day: t.String(), finished: t.Integer(), failed: t.Integer() }), {
    description: "every UTC day of the window, oldest first; failed counts expired builds too",
  }),
});
export type BuildStatsView = Static<typeof BuildStats>;
