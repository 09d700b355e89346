/**
 * @module api/routes/me
 * Who am I: the smallest authenticated endpoint, proving a credential works.
 */
import { Elysia, t } from "elysia";
import { authorize } from "../../auth/index.ts";
import type { IdentityContext } from "../identity.ts";

const Me = t.Object({
  id: t.String(),
  username: t.String(),
  is_admin: t.Boolean(),
  token_id: t.Nullable(t.String({ description: "the token this request used (null for a web session)" })),
});

export function meRoutes(ctx: Pick<IdentityContext, "actorOf">) {
  return new Elysia({ name: "routes/me" }).get(
    "/api/v1/me",
    async ({ request }) => {
      const actor = await ctx.actorOf(request);
      authorize(actor, "self:read");
      if (actor.kind !== "user") throw new Error("unreachable: policy allowed a non-user");
      return { id: actor.userId, username: actor.username, is_admin: actor.isAdmin, token_id: actor.tokenId };
    },
    {
      response: { 200: Me },
      detail: { tags: ["identity"], summary: "The user the presented token acts as", security: [{ bearer: [] }] },
    },
  );
}
