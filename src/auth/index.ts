/**
 * @module auth
 * Credentials, actors, the authorization policy, and the first administrator.
 */
export { authServiceFactory, type AuthService } from "./authenticate.ts";
export { actorLabel, type Actor, type Role } from "./actor.ts";
export { authorize, can, canManageUserToken, canSee, type Action, type Resource } from "./policy.ts";
export { bootstrapAdministrator, INITIAL_ADMIN_TOKEN_FILE, type BootstrapResult } from "./bootstrap.ts";
export { generateToken, hashToken, tokenKind, TOKEN_PREFIX, type TokenKind } from "./token-format.ts";
