/**
 * @module api/actor
 * Who is calling, resolved once per request by an Elysia macro: a route that declares
 * `{ actor: true }` finds the authenticated `actor` in its context, and an anonymous caller is
 * answered 401 before the handler runs (so before any resource is looked up).
 *
 * The rule for permissions over REST: the route decides, once. It loads the resource through
 * the service that owns it (a missing id is a 404 there) and asks src/auth/policy.ts with
 * `authorize(actor, action, resource)`; the services it then calls trust that decision. The
 * builds service is the one service that still decides for itself, because the Connect RPC
 * build API calls it with the same actor; its REST routes therefore only pass the actor on.
 * No route compares roles itself; a route that takes one kind of credential (the egress
 * agent's) checks the kind only to say so, and still asks the policy.
 */
import { Elysia } from "elysia";
import { authorize, type Action, type Actor, type Resource } from "../auth/index.ts";
import { NotFoundError } from "../errors.ts";

/** A person's actor (user tokens and web sessions), as the policy admits it for `action`. */
export type PersonActor = Extract<Actor, { kind: "user" }>;

/**
 * The macro `actor`: resolves the caller with `actorOf` (which audits failed authentication)
 * before the handler. Validation runs first, so a malformed request is a 400 whoever sends it.
 */
export function actorMacro(actorOf: (request: Request) => Promise<Actor>) {
  // Unnamed: each route module mounts its own copy (a name would let Elysia deduplicate it
  // across apps built in one process, each with its own actorOf).
  return new Elysia().macro({
    actor: {
      async resolve({ request }) {
        return { actor: await actorOf(request) };
      },
    },
  });
}

/** The policy's answer for an action only a person may take: the actor, typed as one. */
export function asPerson(actor: Actor, action: Extract<Action, "self:read" | "self:tokens">): PersonActor {
  authorize(actor, action);
  return actor as PersonActor;
}

/**
 * `authorize`, where the resource was found through another one (a token, a trust
 * relationship): another tenant's answers exactly like a missing one of its own kind, not
 * "no such organization".
 */
export function authorizeAs(missing: string, actor: Actor, action: Action, resource: Resource): void {
  try {
    authorize(actor, action, resource);
  } catch (e) {
    if (e instanceof NotFoundError) throw new NotFoundError(missing);
    throw e;
  }
}
