/**
 * @module api/identity
 * What the identity routes share: the services they call, and `actorOf`, which authenticates a
 * request and audits every failed authentication (with the caller's address, never the
 * credential).
 */
import type { AuditService } from "../auth/audit.ts";
import type { Actor, AuthService } from "../auth/index.ts";
import type { DeviceLoginService } from "../auth/device-login.ts";
import { SESSION_COOKIE, type SessionsService } from "../auth/sessions.ts";
import type { TokensService } from "../auth/api-tokens.ts";
import type { TrustService } from "../auth/ci-trusts.ts";
import { ForbiddenError, UnauthenticatedError } from "../errors.ts";
import type { OrgsService } from "../orgs/service.ts";
import type { ProjectsService } from "../projects/service.ts";
import type { QuotasService } from "../orgs/quotas.ts";
import type { EgressService } from "../egress/service.ts";

export interface IdentityServices {
  auth: Pick<AuthService, "authenticate" | "userActor">;
  sessions: SessionsService;
  audit: AuditService;
  orgs: OrgsService;
  projects: ProjectsService;
  /** Per-organization quotas; without it the quota routes are not served. */
  quotas?: QuotasService;
  tokens: TokensService;
  trust: TrustService;
  deviceLogins: DeviceLoginService;
  /** Egress policies, runner hosts and agents; without it the egress routes are not served. */
  egress?: EgressService;
  /** The appliance's public URL: the default `aud` of new trust relationships, and where
   * device logins are approved. */
  publicUrl: string;
}

export interface IdentityContext extends IdentityServices {
  /** The authenticated actor; anonymous callers get 401 before any resource is looked up, so
   * they cannot tell an existing id from a missing one. */
  actorOf(request: Request): Promise<Actor>;
  ip(request: Request): string | null;
}

export function identityContext(
  services: IdentityServices,
  clientAddress: (r: Request) => string | null,
): IdentityContext {
  return {
    ...services,
    ip: clientAddress,
    async actorOf(request) {
      const jwt = bearerJwt(request);
      // CI OIDC tokens are verified (and their failures audited) by the trust service.
      if (jwt) return services.trust.actorForJwt(jwt, clientAddress(request));
      let actor: Actor;
      try {
        const authorization = request.headers.get("authorization");
        const session = authorization ? null : sessionCookie(request);
        if (session) {
          // Cookies ride along on cross-site requests; a state change must come from our own pages.
          if (!SAFE_METHODS.has(request.method) && !sameOrigin(request, services.publicUrl)) {
            throw new ForbiddenError("cross-site request refused: the Origin header must be this server's");
          }
          const { userId } = services.sessions.resolve(session);
          actor = services.auth.userActor(userId, null);
        } else {
          actor = await services.auth.authenticate(authorization);
        }
      } catch (e) {
        if (e instanceof UnauthenticatedError) {
          services.audit.record({
            actor: "anonymous",
            action: "auth.failure",
            outcome: "failure",
            ip: clientAddress(request),
            details: { reason: e.message, path: new URL(request.url).pathname },
          });
        }
        throw e;
      }
      if (actor.kind === "anonymous")
        throw new UnauthenticatedError("this endpoint needs credentials: Authorization: Bearer <token>");
      return actor;
    },
  };
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** A Bearer credential shaped like a JWT (Slipway's own tokens never contain dots). */
export function bearerJwt(request: Request): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  return m && JWT_SHAPE.test(m[1]!) ? m[1]! : null;
}

export function sessionCookie(request: Request): string | null {
  const header = request.headers.get("cookie");
  if (!header) return null;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === SESSION_COOKIE) return v.join("=") || null;
  }
  return null;
}

/** Origin (or, failing that, Referer) names this server — as the request reached it, or as its
 * public URL says (behind a proxy the two differ). Browsers always send Origin on cross-site
 * POST/PUT/PATCH/DELETE, so its absence on a cookie request is refused too. */
function sameOrigin(request: Request, publicUrl: string): boolean {
  const own = new Set([new URL(request.url).origin, new URL(publicUrl).origin]);
  const origin = request.headers.get("origin");
  if (origin) return own.has(origin);
  const referer = request.headers.get("referer");
  if (referer) {
    try {
      return own.has(new URL(referer).origin);
    } catch {
      return false;
    }
  }
  return false;
}
