/**
 * @module api/routes/trust
 * OIDC trust relationships of a project, and the exchange of a CI OIDC token for a short-lived
 * Slipway token (also accepted as-is as a Bearer token wherever a project credential is).
 */
import { Elysia, t } from "elysia";
import { peekJws } from "../../auth/oidc/index.ts";
import { authorize } from "../../auth/index.ts";
import { OidcExchange, OidcExchanged, Trust as TrustView, TrustCreate } from "../../auth/models.ts";
import { rateLimiterFactory } from "../../auth/rate-limit.ts";
import { NotFoundError } from "../../errors.ts";
import { actorMacro, authorizeAs } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

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
    .use(actorMacro(ctx.actorOf))
    .get(
      "/projects/:id/trust",
      ({ actor, params }) => {
        const res = load(params.id);
        authorize(actor, "trust:read", res);
        return trust.list(res.projectId);
      },
      {
        actor: true,
        response: { 200: t.Array(TrustView) },
        detail: { tags: ["trust"], summary: "A project's OIDC trust relationships", security: bearer },
      },
    )
    .post(
      "/projects/:id/trust",
      ({ actor, params, body, set }) => {
        const res = load(params.id);
        authorize(actor, "trust:manage", res);
        const { static_jwks, ...rest } = body;
        set.status = 201;
        return trust.create(
          res.projectId,
          res.orgId,
          { ...rest, audiences: body.audiences ?? [ctx.publicUrl], staticJwks: static_jwks },
          actor,
        );
      },
      {
        actor: true,
        body: TrustCreate,
        response: { 201: TrustView },
        detail: {
          tags: ["trust"],
          summary: "Trust CI OIDC tokens matching these claims to act for the project (owners, organization tokens)",
          security: bearer,
        },
      },
    )
    .delete(
      "/trust/:id",
      ({ actor, params, set }) => {
        const found = trust.get(params.id);
        if (!found) throw new NotFoundError("no such trust relationship");
        const res = load(found.project_id);
        // Another tenant's trust answers exactly like a missing one, not "no such project".
        authorizeAs("no such trust relationship", actor, "trust:manage", res);
        trust.delete(found.id, res.orgId, actor);
        set.status = 204;
      },
      { actor: true, detail: { tags: ["trust"], summary: "Remove a trust relationship", security: bearer } },
    )
    .post(
      "/oidc/exchange",
      ({ request, body }) => {
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
        body: OidcExchange,
        response: { 200: OidcExchanged },
        detail: {
          tags: ["trust"],
          summary:
            "Exchange a CI OIDC token for a Slipway token for one project whose trust it matches (expires with it, at most 1 h)",
        },
      },
    );
}
