/**
 * @module auth
 * Credentials, actors, the authorization policy, and the first administrator.
 */
export { authServiceFactory, type Actor, type AuthService } from "./authenticate.ts";
export { authorize, can, type Action } from "./policy.ts";
export { bootstrapAdministrator, INITIAL_ADMIN_TOKEN_FILE, type BootstrapResult } from "./bootstrap.ts";
export { generateToken, hashToken, tokenKind, TOKEN_PREFIX, type TokenKind } from "./tokens.ts";
