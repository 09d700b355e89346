/**
 * @module api/routes/projects
 * Projects and their settings; an organization's list carries each project's last builds
 * (read through the builds service, which owns them) when the appliance runs builds.
 */
import { Elysia, t } from "elysia";
import { authorize } from "../../auth/index.ts";
import type { BuildsService } from "../../builds/index.ts";
import { Project, ProjectCreate, ProjectListed, ProjectPatch } from "../../projects/models.ts";
import { actorMacro } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

const bearer = [{ bearer: [] }];
/** Marks in a projects list's health strip. */
const RECENT_BUILDS = 10;

export interface ProjectRoutesDeps {
  /** The last builds of each listed project; without it lists carry none. */
  builds?: Pick<BuildsService, "recentOf">;
}

export function projectRoutes(ctx: IdentityContext, deps: ProjectRoutesDeps = {}) {
  const { orgs, projects } = ctx;
  const load = (id: string) => {
    const p = projects.get(id);
    return { project: p, resource: { orgId: p.org_id, projectId: p.id } };
  };

  return new Elysia({ name: "routes/projects", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/projects",
      ({ actor }) => {
        authorize(actor, "visible:list");
        return projects.visibleTo(actor);
      },
      {
        actor: true,
        response: { 200: t.Array(Project) },
        detail: { tags: ["projects"], summary: "Every project the caller can see", security: bearer },
      },
    )
    .get(
      "/orgs/:org/projects",
      ({ actor, params }) => {
        const org = orgs.get(params.org);
        authorize(actor, "org:read", { orgId: org.id });
        const list = projects.list(org.id);
        if (!deps.builds) return list;
        const recent = deps.builds.recentOf(actor, list, RECENT_BUILDS);
        return list.map((p) => ({ ...p, recent_builds: recent.get(p.id) ?? [] }));
      },
      {
        actor: true,
        response: { 200: t.Array(ProjectListed) },
        detail: {
          tags: ["projects"],
          summary: "An organization's projects, each with its last builds (newest first)",
          security: bearer,
        },
      },
    )
    .post(
      "/orgs/:org/projects",
      ({ actor, params, body, set }) => {
        const org = orgs.get(params.org);
        authorize(actor, "project:create", { orgId: org.id });
        set.status = 201;
        return projects.create(org.id, body, actor);
      },
      {
        actor: true,
        body: ProjectCreate,
        response: { 201: Project },
        detail: { tags: ["projects"], summary: "Create a project (owners, organization tokens)", security: bearer },
      },
    )
    .get(
      "/projects/:id",
      ({ actor, params }) => {
        const { project, resource } = load(params.id);
        authorize(actor, "project:read", resource);
        return project;
      },
      {
        actor: true,
        response: { 200: Project },
        detail: { tags: ["projects"], summary: "A project and its settings", security: bearer },
      },
    )
    .patch(
      "/projects/:id",
      ({ actor, params, body }) => {
        const { resource } = load(params.id);
        authorize(actor, "project:update", resource);
        return projects.update(params.id, body, actor);
      },
      {
        actor: true,
        body: ProjectPatch,
        response: { 200: Project },
        detail: {
          tags: ["projects"],
          summary: "Rename a project or change its settings (owners, organization tokens)",
          security: bearer,
        },
      },
    )
    .delete(
      "/projects/:id",
      async ({ actor, params, set }) => {
        const { resource } = load(params.id);
        authorize(actor, "project:delete", resource);
        await projects.delete(params.id, actor);
        set.status = 204;
      },
      {
        actor: true,
        detail: { tags: ["projects"], summary: "Delete a project (owners, organization tokens)", security: bearer },
      },
    );
}
