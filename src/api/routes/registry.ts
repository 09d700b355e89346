/**
 * @module api/routes/registry
 * The appliance's registry over REST: a project's saved images (tags, age, bytes) and its
 * retention; garbage collection on demand (the administrator).
 */
import { Elysia, t } from "elysia";
import { BodyInteger } from "../schema.ts";
import { authorize } from "../../auth/index.ts";
import { PreconditionError } from "../../errors.ts";
import type { RegistryService } from "../../registry/index.ts";
import type { IdentityContext } from "../identity.ts";

const ProjectId = t.Object({ id: t.String({ minLength: 1, maxLength: 100 }) });
const Image = t.Object({
  digest: t.String(),
  tags: t.Array(t.String()),
  build_id: t.Nullable(t.String()),
  media_type: t.String(),
  bytes: t.Integer({ description: "config and layers (all platforms of an index)" }),
  pushed_at: t.String(),
  age_seconds: t.Integer(),
});
const Usage = t.Object({
  repository: t.String({ description: "what `docker pull` names: <appliance host:port>/<project id>" }),
  retention_days: t.Integer(),
  available: t.Boolean(),
  total_bytes: t.Integer(),
  images: t.Array(Image),
});
const bearer = [{ bearer: [] }];

export function registryRoutes(deps: { ctx: IdentityContext; registry: Pick<RegistryService, "usage" | "setRetention" | "collect" | "available" | "status"> }) {
  const { ctx, registry } = deps;
  const projectFor = async (request: Request, id: string, action: "project:read" | "project:update") => {
    const actor = await ctx.actorOf(request);
    const p = ctx.projects.get(id);
    authorize(actor, action, { orgId: p.org_id, projectId: p.id });
    return p;
  };
  return new Elysia({ name: "routes/registry", prefix: "/api/v1" })
    .get("/projects/:id/registry", async ({ request, params }) => registry.usage((await projectFor(request, params.id, "project:read")).id), {
      params: ProjectId,
      response: { 200: Usage },
      detail: { tags: ["registry"], summary: "A project's saved images (depot build --save): tags, age and size, and the retention in force", security: bearer },
    })
    .put(
      "/projects/:id/registry",
      async ({ request, params, body }) => {
        const actor = await ctx.actorOf(request);
        const p = await projectFor(request, params.id, "project:update");
        registry.setRetention(p.id, body.retention_days);
        ctx.audit.record({ orgId: p.org_id, actor, action: "registry.retention", target: p.id, details: { retention_days: body.retention_days } });
        return registry.usage(p.id);
      },
      {
        params: ProjectId,
        body: t.Object({ retention_days: BodyInteger({ minimum: 0, maximum: 3650, description: "days a saved image is kept after its last push (0: until the next collection)" }) }, { additionalProperties: false }),
        response: { 200: Usage },
        detail: { tags: ["registry"], summary: "Set a project's registry retention (owners, organization tokens)", security: bearer },
      },
    )
    .post(
      "/registry/gc",
      async ({ request }) => {
        const actor = await ctx.actorOf(request);
        authorize(actor, "appliance:admin");
        if (!registry.available()) throw new PreconditionError(`the registry is not available: ${registry.status().detail}`);
        const r = await registry.collect();
        ctx.audit.record({ actor, action: "registry.gc", details: { deleted: r.deleted.length, bytes_before: r.bytes_before, bytes_after: r.bytes_after, ok: r.gc.ok } });
        return { deleted: r.deleted, bytes_before: r.bytes_before, bytes_after: r.bytes_after, ok: r.gc.ok };
      },
      {
        response: {
          200: t.Object({ deleted: t.Array(t.Object({ project_id: t.String(), digest: t.String(), tags: t.Array(t.String()) })), bytes_before: t.Integer(), bytes_after: t.Integer(), ok: t.Boolean() }),
        },
        detail: { tags: ["registry"], summary: "Delete saved images past their project's retention, then garbage-collect the registry's storage (administrator)", security: bearer },
      },
    );
}
