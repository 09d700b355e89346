/**
 * @module projects/models
 * The projects API's request and response shapes, defined once (TypeBox through Elysia's `t`):
 * the routes validate with them, the OpenAPI document describes them, and the CLI takes its
 * types from them. Imports no service, so client code may import it.
 */
import { t, type Static } from "elysia";
import { BodyInteger } from "../http/schema.ts";

/** Project names: a letter or digit, then letters, digits, dot, underscore, dash; 63 at most.
 * The REST API and the depot-compatible RPCs validate against these same rules. */
export const PROJECT_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$";
export const PROJECT_NAME_RULE = "letters, digits, . _ -; up to 63 characters";

type SettingKey =
  | "cache_size_gb"
  | "cache_keep_days"
  | "builder_cpus"
  | "builder_memory_mb"
  | "builder_idle_timeout_seconds"
  | "build_timeout_seconds";
/** Allowed range of each setting (whole numbers). */
export const SETTING_LIMITS: Record<SettingKey, { min: number; max: number }> = {
  cache_size_gb: { min: 1, max: 10000 },
  cache_keep_days: { min: 1, max: 3650 },
  builder_cpus: { min: 1, max: 256 },
  builder_memory_mb: { min: 256, max: 1048576 },
  builder_idle_timeout_seconds: { min: 30, max: 86400 },
  build_timeout_seconds: { min: 60, max: 86400 },
};

const setting = (key: SettingKey, description: string) =>
  BodyInteger({ minimum: SETTING_LIMITS[key].min, maximum: SETTING_LIMITS[key].max, description });
const Settings = {
  cache_size_gb: setting("cache_size_gb", "cache size per platform, GB (default 50)"),
  cache_keep_days: setting("cache_keep_days", "keep cache entries this many days (default 14)"),
  builder_cpus: setting("builder_cpus", "CPUs per builder (default 2)"),
  builder_memory_mb: setting("builder_memory_mb", "memory per builder, MB (default 4096)"),
  builder_idle_timeout_seconds: setting("builder_idle_timeout_seconds", "stop an idle builder after (default 300)"),
  build_timeout_seconds: setting("build_timeout_seconds", "hard timeout of a build (default 7200)"),
};
const SettingsPatch = {
  cache_size_gb: t.Optional(Settings.cache_size_gb),
  cache_keep_days: t.Optional(Settings.cache_keep_days),
  builder_cpus: t.Optional(Settings.builder_cpus),
  builder_memory_mb: t.Optional(Settings.builder_memory_mb),
  builder_idle_timeout_seconds: t.Optional(Settings.builder_idle_timeout_seconds),
  build_timeout_seconds: t.Optional(Settings.build_timeout_seconds),
};
const ProjectName = t.String({ pattern: PROJECT_NAME_PATTERN, description: PROJECT_NAME_RULE });

export const Project = t.Object({
  id: t.String(),
  org_id: t.String(),
  name: t.String(),
  created_at: t.String(),
  ...Settings,
});
export type ProjectView = Static<typeof Project>;
/** A build in a projects list's health strip (its status as builds/models has it; not imported
 * from there, since builds already depends on projects). */
export const RecentBuild = t.Object({
  id: t.String(),
  status: t.String({ description: "created, running, finished, failed, canceled or expired" }),
  created_at: t.String(),
});
/** GET /orgs/{org}/projects: each project with its last builds (newest first), when the
 * appliance runs builds — the list's health strip without a request per project. */
export const ProjectListed = t.Composite([
  Project,
  t.Object({ recent_builds: t.Optional(t.Array(RecentBuild, { maxItems: 10 })) }),
]);
export type ProjectListedView = Static<typeof ProjectListed>;
/** POST /orgs/{org}/projects */
export const ProjectCreate = t.Object({ name: ProjectName, ...SettingsPatch }, { additionalProperties: false });
/** PATCH /projects/{id} */
export const ProjectPatch = t.Object(
  { name: t.Optional(ProjectName), ...SettingsPatch },
  { additionalProperties: false },
);
/** A project named in a path: its id (prj_…). */
export const ProjectParams = t.Object({ id: t.String({ minLength: 1, maxLength: 100 }) });
