/**
 * @module api/identity
 * What the identity routes share: the services they call, and `actorOf`, which authenticates a
 * request and audits every failed authentication (with the caller's address, never the
 * credential).
 */
import type { AuditService } from "../auth/audit.ts";
import type { Actor, AuthService } from "../auth/index.ts";
import type { TokensService } from "../auth/token-service.ts";
import { UnauthenticatedError } from "../errors.ts";
import type { OrgsService } from "../orgs/service.ts";
import type { ProjectsService } from "../projects/service.ts";

export interface IdentityServices {
  auth: Pick<AuthService, "authenticate">;
  audit: AuditService;
  orgs: OrgsService;
  projects: ProjectsService;
  tokens: TokensService;
}

export interface IdentityContext extends IdentityServices {
  /** The authenticated actor; anonymous callers get 401 before any resource is looked up, so
   * they cannot tell an existing id from a missing one. */
  actorOf(request: Request): Promise<Actor>;
  ip(request: Request): string | null;
}

export function identityContext(services: IdentityServices, clientAddress: (r: Request) => string | null): IdentityContext {
  return {
    ...services,
    ip: clientAddress,
    async actorOf(request) {
      let actor: Actor;
      try {
        actor = await services.auth.authenticate(request.headers.get("authorization"));
      } catch (e) {
        if (e instanceof UnauthenticatedError) {
          services.audit.record({ actor: "anonymous", action: "auth.failure", outcome: "failure", ip: clientAddress(request), details: { reason: e.message, path: new URL(request.url).pathname } });
        }
        throw e;
      }
      if (actor.kind === "anonymous") throw new UnauthenticatedError("this endpoint needs credentials: Authorization: Bearer <token>");
      return actor;
    },
  };
}
