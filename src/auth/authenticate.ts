/**
 * @module auth/authenticate
 * Turns a presented credential into an actor. Unknown, expired and revoked tokens all become
 * the same UnauthenticatedError, so a caller learns nothing about which it was. Slipway tokens
 * are found by the SHA-256 of the whole string (an index lookup, no secret comparison in JS).
 * Raw CI OIDC JWTs are the trust service's (auth/ci-trusts.ts).
 */
import { UnauthenticatedError } from "../errors.ts";
import type { Actor, Role } from "./actor.ts";
import type { TokensService } from "./api-tokens.ts";
import { hashToken, tokenKind } from "./token-format.ts";

export type { Actor } from "./actor.ts";

/** last_used_at is advisory: write it at most this often per token to keep reads read-only. */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * What authentication reads from the tables' owners. Declared here, narrow, because auth sits
 * below the services that own users, projects and runner hosts (they import its actor and
 * policy): orgs/service, projects/service and egress/service satisfy these as they are.
 */
export interface AuthDeps {
  tokens: Pick<TokensService, "findBySecretHash" | "projectIdsOf" | "touch">;
  /** orgs/service: a user with their memberships. */
  users: {
    userWithMemberships(
      userId: string,
    ): { id: string; username: string; is_admin: boolean; memberships: { org_id: string; role: Role }[] } | null;
  };
  /** projects/service. */
  projects: { orgOf(projectId: string): string | null };
  /** egress/service: egress agent tokens live with their runner host, not in api_tokens. */
  runnerHosts: { findByAgentTokenHash(sha256: Uint8Array): { id: string; org_id: string } | null };
  now?: () => Date;
}

export type AuthService = ReturnType<typeof authServiceFactory>;

export function authServiceFactory({ tokens, users, projects, runnerHosts, now = () => new Date() }: AuthDeps) {
  const invalid = () => new UnauthenticatedError("invalid or expired credentials");

  /** The user with their roles; used for user tokens and sessions. */
  function userActor(userId: string, tokenId: string | null): Actor {
    const u = users.userWithMemberships(userId);
    if (!u) throw invalid();
    const memberships: Record<string, Role> = {};
    for (const m of u.memberships) memberships[m.org_id] = m.role;
    return { kind: "user", userId: u.id, username: u.username, isAdmin: u.is_admin, tokenId, memberships };
  }

  function tokenActor(token: string): Actor {
    const kind = tokenKind(token);
    if (!kind) throw invalid();
    if (kind === "agent") {
      const host = runnerHosts.findByAgentTokenHash(hashToken(token));
      if (!host) throw invalid();
      return { kind: "agent", tokenId: host.id, orgId: host.org_id, hostId: host.id };
    }
    const row = tokens.findBySecretHash(hashToken(token));
    const t = now();
    if (!row || row.revoked_at || (row.expires_at && Date.parse(row.expires_at) <= t.getTime())) throw invalid();
    // Build tokens live as long as their build, whose health reports say when it was last heard
    // from; touching each on first use was a write per build admission.
    if (
      row.kind !== "build" &&
      (!row.last_used_at || t.getTime() - Date.parse(row.last_used_at) > LAST_USED_RESOLUTION_MS)
    )
      tokens.touch(row.id, t);
    switch (row.kind) {
      case "user":
        return userActor(row.user_id!, row.id);
      case "org":
        return { kind: "org-token", tokenId: row.id, orgId: row.org_id! };
      case "project": {
        const orgId = row.project_id ? projects.orgOf(row.project_id) : null;
        if (!row.project_id || !orgId) throw invalid();
        return { kind: "project-token", tokenId: row.id, orgId, projectId: row.project_id };
      }
      case "oidc": {
        const scoped = tokens.projectIdsOf(row.id).flatMap((projectId) => {
          const orgId = projects.orgOf(projectId);
          return orgId ? [{ projectId, orgId }] : [];
        });
        if (scoped.length === 0) throw invalid();
        return { kind: "oidc", tokenId: row.id, issuer: null, subject: row.id, projects: scoped };
      }
      case "build": {
        const orgId = row.project_id ? projects.orgOf(row.project_id) : null;
        if (!row.build_id || !row.project_id || !orgId) throw invalid();
        return { kind: "build-token", tokenId: row.id, orgId, projectId: row.project_id, buildId: row.build_id };
      }
      default:
        throw invalid();
    }
  }

  return {
    /** `authorization` is the raw header value (or null). */
    async authenticate(authorization: string | null): Promise<Actor> {
      if (!authorization) return { kind: "anonymous" };
      const m = /^Bearer\s+(\S+)$/i.exec(authorization);
      if (!m) throw new UnauthenticatedError("the Authorization header must be 'Bearer <token>'");
      const credential = m[1]!;
      if (credential.startsWith("slw_")) return tokenActor(credential);
      throw invalid();
    },
    userActor,
  };
}
