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
