/**
 * @module api/routes/me
 * Who am I: the smallest authenticated endpoint, proving a credential works.
 */
import { Elysia } from "elysia";
import { Me } from "../../auth/models.ts";
import { actorMacro, asPerson } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

export function meRoutes(ctx: Pick<IdentityContext, "actorOf">) {
  return new Elysia({ name: "routes/me" }).use(actorMacro(ctx.actorOf)).get(
    "/api/v1/me",
    ({ actor }) => {
      const person = asPerson(actor, "self:read");
      return {
        id: person.userId,
        username: person.username,
        is_admin: person.isAdmin,
        token_id: person.tokenId,
        memberships: person.memberships,
      };
    },
    {
      actor: true,
      response: { 200: Me },
      detail: { tags: ["identity"], summary: "The user the presented token acts as", security: [{ bearer: [] }] },
    },
  );
}
