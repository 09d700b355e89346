/**
 * @module auth
 * Credentials, actors and the authorization policy.
 */
export { authServiceFactory, type AuthService } from "./authenticate.ts";
export { actorLabel, type Actor, type Role } from "./actor.ts";
export { authorize, can, canManageUserToken, canSee, type Action, type Resource } from "./policy.ts";
export { generateToken, hashToken, tokenKind, TOKEN_PREFIX, type TokenKind } from "./token-format.ts";
