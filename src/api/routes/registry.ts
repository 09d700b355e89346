/**
 * @module api/routes/registry
 * The appliance's registry over REST: a project's saved images (tags, age, bytes) and its
 * retention; garbage collection on demand (the administrator).
 */
import { Elysia } from "elysia";
import { authorize, type Actor } from "../../auth/index.ts";
import { PreconditionError } from "../../errors.ts";
import type { RegistryService } from "../../registry/index.ts";
import { Collection, RegistryUsage as Usage, RetentionSet } from "../../registry/models.ts";
import { ProjectParams as ProjectId } from "../../projects/models.ts";
import { actorMacro } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

const bearer = [{ bearer: [] }];

export interface RegistryRoutesDeps {
  ctx: IdentityContext;
  registry: Pick<RegistryService, "usage" | "setRetention" | "collect" | "available" | "status">;
}

export function registryRoutes(deps: RegistryRoutesDeps) {
  const { ctx, registry } = deps;
  const projectFor = (actor: Actor, id: string, action: "project:read" | "project:update") => {
    const p = ctx.projects.get(id);
    authorize(actor, action, { orgId: p.org_id, projectId: p.id });
    return p;
  };
  return new Elysia({ name: "routes/registry", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/projects/:id/registry",
      ({ actor, params }) => registry.usage(projectFor(actor, params.id, "project:read").id),
      {
        actor: true,
        params: ProjectId,
        response: { 200: Usage },
        detail: {
          tags: ["registry"],
          summary: "A project's saved images (depot build --save): tags, age and size, and the retention in force",
          security: bearer,
        },
      },
    )
    .put(
      "/projects/:id/registry",
      ({ actor, params, body }) => {
        const p = projectFor(actor, params.id, "project:update");
        registry.setRetention(p.id, body.retention_days);
        ctx.audit.record({
          orgId: p.org_id,
          actor,
          action: "registry.retention",
          target: p.id,
          details: { retention_days: body.retention_days },
        });
        return registry.usage(p.id);
      },
      {
        actor: true,
        params: ProjectId,
        body: RetentionSet,
        response: { 200: Usage },
        detail: {
          tags: ["registry"],
          summary: "Set a project's registry retention (owners, organization tokens)",
          security: bearer,
        },
      },
    )
    .post(
      "/registry/gc",
      async ({ actor }) => {
        authorize(actor, "appliance:admin");
        if (!registry.available())
          throw new PreconditionError(`the registry is not available: ${registry.status().detail}`);
        const r = await registry.collect();
        ctx.audit.record({
          actor,
          action: "registry.gc",
          details: { deleted: r.deleted.length, bytes_before: r.bytes_before, bytes_after: r.bytes_after, ok: r.gc.ok },
        });
        return { deleted: r.deleted, bytes_before: r.bytes_before, bytes_after: r.bytes_after, ok: r.gc.ok };
      },
      {
        actor: true,
        response: { 200: Collection },
        detail: {
          tags: ["registry"],
          summary:
            "Delete saved images past their project's retention, then garbage-collect the registry's storage (administrator)",
          security: bearer,
        },
      },
    );
}
