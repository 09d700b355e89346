/**
 * @module auth/policy
 * The one place that decides who may do what. Routes ask `can(actor, action)` and never look
 * at roles themselves; the table in policy.test.ts pins every decision.
 */
import { ForbiddenError, UnauthenticatedError } from "../errors.ts";
import type { Actor } from "./authenticate.ts";

export type Action = "self:read" | "appliance:read";

export function can(actor: Actor, action: Action): boolean {
  switch (action) {
    case "self:read":
      return actor.kind === "user";
    case "appliance:read":
      return actor.kind === "user" && actor.isAdmin;
  }
}

/** Throws the error the API maps to 401 (no credentials) or 403 (not allowed). */
export function authorize(actor: Actor, action: Action): void {
  if (can(actor, action)) return;
  if (actor.kind === "anonymous") throw new UnauthenticatedError("this endpoint needs credentials: Authorization: Bearer <token>");
  throw new ForbiddenError(`not allowed: ${action}`);
}
