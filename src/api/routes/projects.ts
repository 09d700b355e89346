/**
 * @module api/routes/projects
 * Projects and their settings.
 */
import { Elysia, t } from "elysia";
import { BodyInteger } from "../schema.ts";
import { authorize } from "../../auth/index.ts";
import { PROJECT_NAME_PATTERN, PROJECT_NAME_RULE, SETTING_LIMITS, type ProjectSettings } from "../../projects/service.ts";
import type { IdentityContext } from "../identity.ts";

const setting = (key: keyof ProjectSettings, description: string) => BodyInteger({ minimum: SETTING_LIMITS[key].min, maximum: SETTING_LIMITS[key].max, description });
const Settings = {
  cache_size_gb: setting("cache_size_gb", "cache size per platform, GB (default 50)"),
  cache_keep_days: setting("cache_keep_days", "keep cache entries this many days (default 14)"),
  builder_cpus: setting("builder_cpus", "CPUs per builder (default 2)"),
  builder_memory_mb: setting("builder_memory_mb", "memory per builder, MB (default 4096)"),
  builder_idle_timeout_seconds: setting("builder_idle_timeout_seconds", "stop an idle builder after (default 300)"),
  build_timeout_seconds: setting("build_timeout_seconds", "hard timeout of a build (default 7200)"),
};
const Name = t.String({ pattern: PROJECT_NAME_PATTERN, description: PROJECT_NAME_RULE });
const Project = t.Object({ id: t.String(), org_id: t.String(), name: t.String(), created_at: t.String(), ...Settings });
const SettingsPatch = {
  cache_size_gb: t.Optional(Settings.cache_size_gb),
  cache_keep_days: t.Optional(Settings.cache_keep_days),
  builder_cpus: t.Optional(Settings.builder_cpus),
  builder_memory_mb: t.Optional(Settings.builder_memory_mb),
  builder_idle_timeout_seconds: t.Optional(Settings.builder_idle_timeout_seconds),
  build_timeout_seconds: t.Optional(Settings.build_timeout_seconds),
};
const bearer = [{ bearer: [] }];

export function projectRoutes(ctx: IdentityContext) {
  const { orgs, projects } = ctx;
  const load = (id: string) => {
    const p = projects.get(id);
    return { project: p, resource: { orgId: p.org_id, projectId: p.id } };
  };

  return new Elysia({ name: "routes/projects", prefix: "/api/v1" })
    .get(
      "/projects",
      async ({ request }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "visible:list");
        return projects.visibleTo(actor);
      },
      {
      response: { 200: t.Array(Project) },
        detail: { tags: ["projects"], summary: "Every project the caller can see", security: bearer },
      },
    )
    .get(
      "/orgs/:org/projects",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        return projects.list(org.id);
      },
      { response: { 200: t.Array(Project) }, detail: { tags: ["projects"], summary: "An organization's projects", security: bearer } },
    )
    .post(
      "/orgs/:org/projects",
      async ({ request, params, body, set }) => {
        const actor = await ctx.actorOf(request);
        const org = orgs.get(params.org);
        authorize(actor, "project:create", { orgId: org.id });
        set.status = 201;
        return projects.create(org.id, body, actor);
      },
      {
        body: t.Object({ name: Name, ...SettingsPatch }, { additionalProperties: false }),
        response: { 201: Project },
        detail: { tags: ["projects"], summary: "Create a project (owners, organization tokens)", security: bearer },
      },
    )
    .get(
      "/projects/:id",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const { project, resource } = load(params.id);
        authorize(actor, "project:read", resource);
        return project;
      },
      { response: { 200: Project }, detail: { tags: ["projects"], summary: "A project and its settings", security: bearer } },
    )
    .patch(
      "/projects/:id",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const { resource } = load(params.id);
        authorize(actor, "project:update", resource);
        return projects.update(params.id, body, actor);
      },
      {
        body: t.Object({ name: t.Optional(Name), ...SettingsPatch }, { additionalProperties: false }),
        response: { 200: Project },
        detail: { tags: ["projects"], summary: "Rename a project or change its settings (owners, organization tokens)", security: bearer },
      },
    )
    .delete(
      "/projects/:id",
      async ({ request, params, set }) => {
        const actor = await ctx.actorOf(request);
        const { resource } = load(params.id);
        authorize(actor, "project:delete", resource);
        await projects.delete(params.id, actor);
        set.status = 204;
      },
      { detail: { tags: ["projects"], summary: "Delete a project (owners, organization tokens)", security: bearer } },
    );
}
