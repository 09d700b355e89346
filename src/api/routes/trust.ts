/**
 * @module api/routes/trust
 * OIDC trust relationships of a project, and the exchange of a CI OIDC token for a short-lived
 * Slipway token (also accepted as-is as a Bearer token wherever a project credential is).
 */
import { Elysia, t } from "elysia";
import { peekJws } from "../../auth/oidc/index.ts";
import { authorize } from "../../auth/index.ts";
import { rateLimiterFactory } from "../../auth/rate-limit.ts";
import { NotFoundError } from "../../errors.ts";
import type { IdentityContext } from "../identity.ts";

const TrustView = t.Object({
  id: t.String(),
  project_id: t.String(),
  provider: t.String(),
  issuer: t.String(),
  audiences: t.Array(t.String()),
  config: t.Record(t.String(), t.Unknown()),
  static_jwks: t.Boolean({ description: "keys are pasted, never fetched" }),
  created_at: t.String(),
});
const bearer = [{ bearer: [] }];

export function trustRoutes(ctx: IdentityContext) {
  const { projects, trust } = ctx;
  const perAddress = rateLimiterFactory({ limit: 60, windowMs: 60_000 });
  const perSubject = rateLimiterFactory({ limit: 20, windowMs: 60_000 });
  const load = (projectId: string) => {
    const p = projects.get(projectId);
    return { orgId: p.org_id, projectId: p.id };
  };

  return new Elysia({ name: "routes/trust", prefix: "/api/v1" })
    .get(
      "/projects/:id/trust",
      async ({ request, params }) => {
        const actor = await ctx.actorOf(request);
        const res = load(params.id);
        authorize(actor, "trust:read", res);
        return trust.list(res.projectId);
      },
      { response: { 200: t.Array(TrustView) }, detail: { tags: ["trust"], summary: "A project's OIDC trust relationships", security: bearer } },
    )
    .post(
      "/projects/:id/trust",
      async ({ request, params, body, set }) => {
        const actor = await ctx.actorOf(request);
        const res = load(params.id);
        authorize(actor, "trust:manage", res);
        const { static_jwks, ...rest } = body;
        set.status = 201;
        return trust.create(res.projectId, res.orgId, { ...rest, audiences: body.audiences ?? [ctx.publicUrl], staticJwks: static_jwks }, actor);
      },
      {
        body: t.Object(
          {
            provider: t.Union([t.Literal("github"), t.Literal("circleci"), t.Literal("buildkite"), t.Literal("generic")]),
            issuer: t.Optional(t.String({ description: "default: the provider's public issuer (GitHub Enterprise Server: its own)" })),
            audiences: t.Optional(t.Array(t.String({ minLength: 1 }), { minItems: 1, description: "default: this appliance's public URL; add https://depot.dev to let the depot CLI's CI flow in" })),
            owner: t.Optional(t.String()),
            repository: t.Optional(t.String({ description: "github: owner/name" })),
            organizationId: t.Optional(t.String({ description: "circleci: organization UUID" })),
            projectUuid: t.Optional(t.String({ description: "circleci: project UUID" })),
            organizationSlug: t.Optional(t.String({ description: "buildkite" })),
            pipelineSlug: t.Optional(t.String({ description: "buildkite" })),
            repositoryId: t.Optional(t.String({ description: "github: pin GitHub's immutable repository_id (digits)" })),
            repositoryOwnerId: t.Optional(t.String({ description: "github: pin GitHub's immutable repository_owner_id (digits)" })),
            ref: t.Optional(t.String({ description: "github: the ref, e.g. refs/heads/main (exact, or a glob with *)" })),
            environment: t.Optional(t.String({ description: "github: the deployment environment, exactly" })),
            claims: t.Optional(t.Record(t.String(), t.String(), { description: "generic: claim → exact value or glob (* matches any run of characters)" })),
            static_jwks: t.Optional(t.Object({ keys: t.Array(t.Record(t.String(), t.Unknown())) }, { description: "the issuer's JWKS, for issuers this appliance cannot reach" })),
          },
          { additionalProperties: false },
        ),
        response: { 201: TrustView },
        detail: { tags: ["trust"], summary: "Trust CI OIDC tokens matching these claims to act for the project (owners, organization tokens)", security: bearer },
      },
    )
    .delete(
      "/trust/:id",
      async ({ request, params, set }) => {
        const actor = await ctx.actorOf(request);
        const found = trust.get(params.id);
        if (!found) throw new NotFoundError("no such trust relationship");
        const res = load(found.project_id);
        try {
          authorize(actor, "trust:manage", res);
        } catch (e) {
          // Another tenant's trust answers exactly like a missing one, not "no such project".
          if (e instanceof NotFoundError) throw new NotFoundError("no such trust relationship");
          throw e;
        }
        trust.delete(found.id, res.orgId, actor);
        set.status = 204;
      },
      { detail: { tags: ["trust"], summary: "Remove a trust relationship", security: bearer } },
    )
    .post(
      "/oidc/exchange",
      async ({ request, body }) => {
        const ip = ctx.ip(request);
        perAddress.hit([`ip:${ip}`]);
        let subject = "unparsable";
        try {
          subject = String(peekJws(body.token).payload.sub ?? "none"); // untrusted, only a rate-limit key
        } catch {}
        perSubject.hit([`sub:${subject}`]);
        return trust.exchange(body.token, ip, body.project);
      },
      {
        body: t.Object(
          {
            token: t.String({ minLength: 1, maxLength: 16384, description: "the CI job's OIDC JWT" }),
            project: t.Optional(t.String({ minLength: 1, maxLength: 200, description: "the project to act for (id or ORG/NAME): only its trust relationships are considered; required when the token matches those of several projects" })),
          },
          { additionalProperties: false },
        ),
        response: { 200: t.Object({ token: t.String(), expires_at: t.String(), projects: t.Array(t.String()) }) },
        detail: { tags: ["trust"], summary: "Exchange a CI OIDC token for a Slipway token for one project whose trust it matches (expires with it, at most 1 h)" },
      },
    );
}
