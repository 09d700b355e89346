/**
 * @module auth/policy
 * The one place that decides who may do what. Routes call `authorize(actor, action, resource)`
 * and never look at roles themselves; `policy.test.ts` and the route matrix in
 * test/e2e/authz-matrix.test.ts pin every decision.
 *
 * Visibility comes first: an actor that cannot see a resource's organization (or project) gets
 * NotFound — exactly what a nonexistent id gets — so ids of other tenants cannot be probed.
 * Only an actor that can see the resource but lacks the right gets Forbidden.
 */
import { ForbiddenError, NotFoundError, UnauthenticatedError } from "../errors.ts";
import { actorLabel, type Actor, type Role } from "./actor.ts";

export type Action =
  | "appliance:admin" // create organizations and users, read the appliance-wide audit log
  | "self:read"
  | "self:tokens" // create, list and revoke one's own user tokens
  | "visible:list" // list the organizations and projects this actor can see (any credential)
  | "org:read"
  | "org:update"
  | "member:read"
  | "member:manage"
  | "project:create"
  | "project:read"
  | "project:update"
  | "project:delete"
  | "build:run" // create builds on a project
  | "build:read" // a build's status, steps and logs
  | "build:drive" // ask for its connection, report health/status/timings, finish it
  | "build:cancel"
  | "cache:reset"
  | "token:manage-org"
  | "token:manage-project"
  | "trust:read"
  | "trust:manage"
  | "audit:read"
  | "egress:read" // an organization's egress policy, runner hosts, apply status and would-be blocks
  | "egress:manage" // change the policy, register runner hosts (mints agent tokens)
  | "egress:agent" // a runner host's agent: fetch its policy, report status and events
  | "egress:local" // designate runner hosts enforced on the appliance host itself, and their scopes (administrator only)
  | "quota:manage" // set an organization's quotas: the administrator alone (not in any role's set)
  | "registry:pull" // pull a project's images from the appliance's registry
  | "registry:push"; // push to a project's repository in the appliance's registry

/** What an action is about: an organization, or a project within one. */
export interface Resource {
  orgId: string;
  projectId?: string;
  /** For build actions: which build, and the actor label of who started it. */
  buildId?: string;
  startedBy?: string;
}

const ANY_ROLE: ReadonlySet<Action> = new Set([
  "org:read",
  "member:read",
  "project:read",
  "build:run",
  "build:read",
  "trust:read",
  "egress:read",
  "registry:pull",
  "registry:push",
]);
const OWNER: ReadonlySet<Action> = new Set([
  ...ANY_ROLE,
  "org:update",
  "member:manage",
  "project:create",
  "project:update",
  "project:delete",
  "cache:reset",
  "build:cancel",
  "token:manage-org",
  "token:manage-project",
  "trust:manage",
  "audit:read",
  "egress:manage",
]);
/** Organization tokens automate projects, but cannot change who is in the organization or mint
 * further organization tokens (no escalation from a leaked automation credential). */
const ORG_TOKEN: ReadonlySet<Action> = new Set([
  "org:read",
  "project:create",
  "project:read",
  "project:update",
  "project:delete",
  "build:run",
  "build:read",
  "build:cancel",
  "cache:reset",
  "token:manage-project",
  "trust:read",
  "trust:manage",
  "egress:read", // read only: a leaked automation credential must not open the firewall
  "registry:pull",
  "registry:push",
]);
/** An egress agent acts for its runner host only. */
const AGENT: ReadonlySet<Action> = new Set(["egress:agent"]);
/** Project-scoped credentials (project tokens, CI OIDC) read their project and build on it. */
const PROJECT_SCOPED: ReadonlySet<Action> = new Set([
  "project:read",
  "build:run",
  "build:read",
  "registry:pull",
  "registry:push",
]);
/** A build token drives its own build and reads it; nothing else, not even its project. */
const BUILD_TOKEN: ReadonlySet<Action> = new Set(["build:read", "build:drive"]);

/** A build token pushes its image to its own project's repository (and reads it back). */
const BUILD_TOKEN_REGISTRY: ReadonlySet<Action> = new Set(["registry:pull", "registry:push"]);
/** A pull token (depot pull-token, GetPullInfo) reads its project's images: nothing else. */
const PULL_TOKEN: ReadonlySet<Action> = new Set(["registry:pull"]);

const roleActions = (role: Role) => (role === "owner" ? OWNER : ANY_ROLE);

/** The projects a project-scoped credential (project token, CI OIDC) is bound to; [] for others. */
export function projectScope(actor: Actor): string[] {
  if (actor.kind === "project-token") return [actor.projectId];
  if (actor.kind === "oidc") return actor.projects.map((p) => p.projectId);
  return [];
}

/** May `actor` know that `resource` exists? */
export function canSee(actor: Actor, resource: Resource): boolean {
  switch (actor.kind) {
    case "anonymous":
      return false;
    case "user":
      return actor.isAdmin || actor.memberships[resource.orgId] !== undefined;
    case "org-token":
    case "agent":
      return actor.orgId === resource.orgId;
    case "build-token":
      return (
        resource.buildId !== undefined && resource.buildId === actor.buildId && resource.projectId === actor.projectId
      );
    case "pull-token":
      return resource.orgId === actor.orgId && resource.projectId === actor.projectId;
    default:
      return resource.projectId !== undefined && projectScope(actor).includes(resource.projectId);
  }
}

export function can(actor: Actor, action: Action, resource?: Resource): boolean {
  if (actor.kind === "anonymous") return false;
  if (action === "visible:list") return true;
  if (action === "self:read" || action === "self:tokens") return actor.kind === "user";
  if (action === "appliance:admin") return actor.kind === "user" && actor.isAdmin;
  // The appliance host's firewall belongs to its administrator, never to an organization.
  if (action === "egress:local") return actor.kind === "user" && actor.isAdmin;
  // The registry has no builds: a build token's repository is its own build's project.
  if (actor.kind === "build-token" && BUILD_TOKEN_REGISTRY.has(action))
    return resource !== undefined && resource.orgId === actor.orgId && resource.projectId === actor.projectId;
  if (!resource || !canSee(actor, resource)) return false;
  // Whoever started a build drives and may cancel it (a project token, a CI job, a user).
  if (
    (action === "build:drive" || action === "build:cancel") &&
    resource.startedBy !== undefined &&
    resource.startedBy === actorLabel(actor)
  )
    return true;
  switch (actor.kind) {
    case "user":
      if (actor.isAdmin) return true;
      return roleActions(actor.memberships[resource.orgId]!).has(action);
    case "org-token":
      return ORG_TOKEN.has(action);
    case "build-token":
      return BUILD_TOKEN.has(action);
    case "agent":
      return AGENT.has(action);
    case "pull-token":
      return PULL_TOKEN.has(action);
    default:
      return PROJECT_SCOPED.has(action);
  }
}

/** May `actor` see and revoke a user token of `ownerUserId`? Its user, or the administrator;
 * to anyone else the token does not exist (the caller answers 404). */
export function canManageUserToken(actor: Actor, ownerUserId: string | null): boolean {
  return actor.kind === "user" && (actor.userId === ownerUserId || actor.isAdmin);
}

/** Throws 401 for no credentials, 404 when the resource is not visible, 403 otherwise. */
export function authorize(actor: Actor, action: Action, resource?: Resource): void {
  if (can(actor, action, resource)) return;
  if (actor.kind === "anonymous")
    throw new UnauthenticatedError("this endpoint needs credentials: Authorization: Bearer <token>");
  if (resource && !canSee(actor, resource))
    throw new NotFoundError(
      resource.buildId ? "no such build" : resource.projectId ? "no such project" : "no such organization",
    );
  throw new ForbiddenError(`not allowed: ${action}`);
}
