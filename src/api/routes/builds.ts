/**
 * @module api/routes/builds
 * Builds over REST: read one (status, steps, logs), list a project's, cancel; and a project's
 * builders and cache (usage per platform, encryption, reset).
 */
import { Elysia, t } from "elysia";
import { authorize, type Actor } from "../../auth/index.ts";
import type { BuildRow, BuildsService } from "../../builds/index.ts";
import type { IdentityContext } from "../identity.ts";

export interface BuildRoutesDeps {
  ctx: IdentityContext;
  builds: BuildsService;
  builders: {
    list(projectId: string): { platform: string; state: string; runtime: string; security_profile: string | null; emulated: number; image: string | null; image_id: string | null; last_used_at: string | null; last_error: string | null }[];
    outdated(projectId: string): { platform: string; to: { image: string; imageId: string }; settingsChanged: boolean }[];
    cacheUsage(projectId: string): Promise<{ platform: string; usage: { usedBytes: number; sizeBytes: number | null } | null; encryption: string }[]>;
  };
  encryption: string;
  resetCache(projectId: string, actor: Actor): Promise<{ platforms: string[] }>;
}

const Build = t.Object({
  id: t.String(),
  project_id: t.String(),
  org_id: t.String(),
  status: t.Union([t.Literal("created"), t.Literal("running"), t.Literal("finished"), t.Literal("failed"), t.Literal("canceled"), t.Literal("expired")]),
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
const Step = t.Object({ digest: t.String(), name: t.String(), cached: t.Boolean(), started_at: t.Nullable(t.String()), completed_at: t.Nullable(t.String()), error: t.Nullable(t.String()) });
const BuildId = t.Object({ id: t.String({ pattern: "^bld_[a-z2-7]{20}$", description: "a build id" }) });
const ProjectId = t.Object({ id: t.String({ minLength: 1, maxLength: 100 }) });
const bearer = [{ bearer: [] }];

export function buildRoutes(deps: BuildRoutesDeps) {
  const { ctx, builds } = deps;
  const view = (b: BuildRow) => ({
    id: b.id,
    project_id: b.project_id,
    org_id: b.org_id,
    status: b.status,
    started_by: b.started_by,
    options: JSON.parse(b.options) as unknown[],
    platforms: JSON.parse(b.platforms) as string[],
    error: b.error,
    created_at: b.created_at,
    started_at: b.started_at,
    finished_at: b.finished_at,
    deadline_at: b.deadline_at,
    cancel_requested_at: b.cancel_requested_at,
    log_bytes: b.log_bytes,
    log_truncated: b.log_truncated === 1,
    build_url: builds.buildUrl(b.id),
  });
  const projectFor = (actor: Actor, id: string, action: "project:read" | "cache:reset") => {
    const p = ctx.projects.get(id);
    authorize(actor, action, { orgId: p.org_id, projectId: p.id });
    return p;
  };

  return new Elysia({ name: "routes/builds", prefix: "/api/v1" })
    .get("/builds/:id", async ({ request, params }) => view(builds.read(await ctx.actorOf(request), params.id)), {
      params: BuildId,
      response: { 200: Build },
      detail: { tags: ["builds"], summary: "A build: status, options, platforms, timings", security: bearer },
    })
    .get(
      "/builds/:id/steps",
      async ({ request, params }) => builds.steps(await ctx.actorOf(request), params.id).map((s) => ({ ...s, cached: s.cached === 1 })),
      { params: BuildId, response: { 200: t.Array(Step) }, detail: { tags: ["builds"], summary: "A build's steps (BuildKit vertexes) in order", security: bearer } },
    )
    .get(
      "/builds/:id/logs",
      async ({ request, params, set }) => {
        const { text, truncated } = builds.logs(await ctx.actorOf(request), params.id);
        set.headers["content-type"] = "text/plain; charset=utf-8";
        set.headers["x-slipway-log-truncated"] = String(truncated);
        return text;
      },
      { params: BuildId, detail: { tags: ["builds"], summary: "A build's log, as text (capped per build; X-Slipway-Log-Truncated says whether it was cut)", security: bearer } },
    )
    .post(
      "/builds/:id/cancel",
      async ({ request, params, set }) => {
        set.status = 202;
        return view(builds.cancel(await ctx.actorOf(request), params.id));
      },
      { params: BuildId, response: { 202: Build }, detail: { tags: ["builds"], summary: "Cancel a build (owners and whoever started it): its client learns it at its next health report", security: bearer } },
    )
    .get(
      "/projects/:id/builds",
      async ({ request, params, query }) => {
        const page = builds.list(await ctx.actorOf(request), params.id, query.limit ?? 50, query.cursor ?? null);
        return { builds: page.builds.map(view), next_cursor: page.next };
      },
      {
        params: ProjectId,
        query: t.Object({ limit: t.Optional(t.Integer({ minimum: 1, maximum: 200 })), cursor: t.Optional(t.String({ maxLength: 200 })) }, { additionalProperties: false }),
        response: { 200: t.Object({ builds: t.Array(Build), next_cursor: t.Nullable(t.String()) }) },
        detail: { tags: ["builds"], summary: "A project's builds, newest first", security: bearer },
      },
    )
    .get(
      "/projects/:id/builders",
      async ({ request, params }) => {
        const p = projectFor(await ctx.actorOf(request), params.id, "project:read");
        const outdated = new Map(deps.builders.outdated(p.id).map((o) => [o.platform, o]));
        return deps.builders.list(p.id).map((b) => {
          const o = outdated.get(b.platform);
          return {
            platform: b.platform,
            state: b.state,
            runtime: b.runtime,
            security_profile: b.security_profile,
            emulated: b.emulated === 1,
            image: b.image,
            image_id: b.image_id,
            // A running builder on an old image or settings: what it becomes when next idle.
            image_upgrade: o ? { image: o.to.image, image_id: o.to.imageId, settings_changed: o.settingsChanged } : null,
            last_used_at: b.last_used_at,
            last_error: b.last_error,
          };
        });
      },
      { params: ProjectId, detail: { tags: ["builders"], summary: "A project's builders: state, runtime, security profile, emulation, and a pending image upgrade", security: bearer } },
    )
    .get(
      "/projects/:id/cache",
      async ({ request, params }) => {
        const p = projectFor(await ctx.actorOf(request), params.id, "project:read");
        const volumes = await deps.builders.cacheUsage(p.id);
        return {
          project_id: p.id,
          encryption: deps.encryption,
          size_gb: p.cache_size_gb,
          keep_days: p.cache_keep_days,
          platforms: volumes.map((v) => ({ platform: v.platform, used_bytes: v.usage?.usedBytes ?? 0, size_bytes: v.usage?.sizeBytes ?? null, encryption: v.encryption })),
        };
      },
      { params: ProjectId, detail: { tags: ["builders"], summary: "A project's build cache: usage per platform and whether it is encrypted", security: bearer } },
    )
    .post(
      "/projects/:id/cache/reset",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const p = projectFor(actor, params.id, "cache:reset");
        return { project_id: p.id, ...(await deps.resetCache(p.id, actor)) };
      },
      { params: ProjectId, detail: { tags: ["builders"], summary: "Stop the project's builders and erase their caches; the next build starts empty (owners)", security: bearer } },
    );
}
