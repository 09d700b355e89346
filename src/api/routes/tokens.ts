/**
 * @module api/routes/tokens
 * API tokens: create (the secret is in this one response only), list (metadata), revoke.
 */
import { Elysia, t } from "elysia";
import { authorize, canManageUserToken, type Actor } from "../../auth/index.ts";
import { TokenCreate, TokenCreated, TokenMetadata as Metadata } from "../../auth/models.ts";
import type { TokenMetadata } from "../../auth/api-tokens.ts";
import { InvalidInputError, NotFoundError } from "../../errors.ts";
import { actorMacro, asPerson, authorizeAs } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

const bearer = [{ bearer: [] }];

export function tokenRoutes(ctx: IdentityContext) {
  const { orgs, projects, tokens } = ctx;

  /** Who may manage a token: its user (or the administrator), or the org's/project's managers. */
  const authorizeToken = (actor: Actor, token: TokenMetadata) => {
    if (token.kind === "user") {
      if (canManageUserToken(actor, token.user_id)) return;
      throw new NotFoundError("no such token");
    }
    // Another tenant's token answers exactly like a missing one: not "no such organization".
    if (token.kind === "org") return authorizeAs("no such token", actor, "token:manage-org", { orgId: token.org_id! });
    if (token.kind === "project" && token.project_id)
      return authorizeAs("no such token", actor, "token:manage-project", {
        orgId: token.org_id!,
        projectId: token.project_id!,
      });
    throw new NotFoundError("no such token"); // exchanged and build tokens are not managed here
  };

  return new Elysia({ name: "routes/tokens", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/tokens",
      ({ actor }) => {
        return tokens.listForUser(asPerson(actor, "self:tokens").userId);
      },
      {
        actor: true,
        response: { 200: t.Array(Metadata) },
        detail: { tags: ["tokens"], summary: "The caller's own user tokens (metadata only)", security: bearer },
      },
    )
    .get(
      "/orgs/:org/tokens",
      ({ actor, params }) => {
        const org = orgs.get(params.org);
        authorize(actor, "token:manage-org", { orgId: org.id });
        return tokens.listForOrg(org.id);
      },
      {
        actor: true,
        response: { 200: t.Array(Metadata) },
        detail: {
          tags: ["tokens"],
          summary: "Organization and project tokens of an organization (owners)",
          security: bearer,
        },
      },
    )
    .get(
      "/projects/:id/tokens",
      ({ actor, params }) => {
        const p = projects.get(params.id);
        authorize(actor, "token:manage-project", { orgId: p.org_id, projectId: p.id });
        return tokens.listForProject(p.id);
      },
      {
        actor: true,
        response: { 200: t.Array(Metadata) },
        detail: {
          tags: ["tokens"],
          summary: "A project's project tokens (owners, organization tokens)",
          security: bearer,
        },
      },
    )
    .post(
      "/tokens",
      ({ actor, body, set, request }) => {
        const expiresAt = body.expires_at ? new Date(body.expires_at) : null;
        if (expiresAt && !(expiresAt.getTime() > Date.now())) {
          throw new InvalidInputError("expires_at must be a time in the future", [
            { pointer: "/expires_at", detail: "must be in the future" },
          ]);
        }
        const createdBy = actor.kind === "user" ? actor.userId : null;
        const ip = ctx.ip(request);
        let created: ReturnType<typeof tokens.create>;
        if (body.kind === "user") {
          authorize(actor, "self:tokens");
          created = tokens.create(
            { kind: "user", name: body.name, expiresAt, userId: createdBy!, createdBy },
            actor,
            ip,
          );
        } else if (body.kind === "org") {
          if (!body.org)
            throw new InvalidInputError("an organization token needs org", [
              { pointer: "/org", detail: "required for kind org" },
            ]);
          const org = orgs.get(body.org);
          authorize(actor, "token:manage-org", { orgId: org.id });
          created = tokens.create({ kind: "org", name: body.name, expiresAt, orgId: org.id, createdBy }, actor, ip);
        } else {
          if (!body.project)
            throw new InvalidInputError("a project token needs project", [
              { pointer: "/project", detail: "required for kind project" },
            ]);
          const p = projects.get(body.project);
          authorize(actor, "token:manage-project", { orgId: p.org_id, projectId: p.id });
          created = tokens.create(
            { kind: "project", name: body.name, expiresAt, orgId: p.org_id, projectId: p.id, createdBy },
            actor,
            ip,
          );
        }
        set.status = 201;
        return { ...created.metadata, token: created.token };
      },
      {
        actor: true,
        body: TokenCreate,
        response: { 201: TokenCreated },
        detail: {
          tags: ["tokens"],
          summary: "Create a user, organization or project token; the secret is returned only here",
          security: bearer,
        },
      },
    )
    .delete(
      "/tokens/:id",
      ({ actor, params, request }) => {
        let token: TokenMetadata;
        try {
          token = tokens.get(params.id);
        } catch {
          throw new NotFoundError("no such token");
        }
        authorizeToken(actor, token);
        return tokens.revoke(token.id, actor, ctx.ip(request));
      },
      {
        actor: true,
        response: { 200: Metadata },
        detail: { tags: ["tokens"], summary: "Revoke a token", security: bearer },
      },
    );
}
