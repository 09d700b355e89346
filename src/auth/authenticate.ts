/**
 * @module auth/authenticate
 * Turns a presented credential into an actor. Unknown, expired and revoked tokens all become
 * the same UnauthenticatedError, so a caller learns nothing about which it was. Slipway tokens
 * are found by the SHA-256 of the whole string (an index lookup, no secret comparison in JS).
 * Raw CI OIDC JWTs are the trust service's (auth/ci-trusts.ts).
 */
import type { Database } from "bun:sqlite";
import { UnauthenticatedError } from "../errors.ts";
import type { Actor, Role } from "./actor.ts";
import { hashToken, tokenKind } from "./token-format.ts";

export type { Actor } from "./actor.ts";

/** last_used_at is advisory: write it at most this often per token to keep reads read-only. */
const LAST_USED_RESOLUTION_MS = 60_000;

export interface AuthDeps {
  db: Database;
  now?: () => Date;
}

interface TokenRow {
  id: string;
  kind: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  user_id: string | null;
  org_id: string | null;
  project_id: string | null;
  project_org_id: string | null;
  build_id: string | null;
}

export type AuthService = ReturnType<typeof authServiceFactory>;

export function authServiceFactory({ db, now = () => new Date() }: AuthDeps) {
  // A correlated subquery, not a LEFT JOIN: the join made this lookup ~10x slower (bench/auth.ts).
  const byHash = db.query(
    `SELECT t.id, t.kind, t.expires_at, t.revoked_at, t.last_used_at, t.user_id, t.org_id, t.project_id, t.build_id,
            (SELECT p.org_id FROM projects p WHERE p.id = t.project_id) AS project_org_id
       FROM api_tokens t
      WHERE t.secret_sha256 = ?`,
  );
  const userById = db.query("SELECT id, username, is_admin FROM users WHERE id = ?");
  const membershipsOf = db.query("SELECT org_id, role FROM memberships WHERE user_id = ?");
  const tokenProjects = db.query(
    "SELECT tp.project_id, (SELECT p.org_id FROM projects p WHERE p.id = tp.project_id) AS org_id FROM api_token_projects tp WHERE tp.token_id = ?",
  );
  const touch = db.query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?");
  // Egress agent tokens live with their runner host (egress/service.ts), not in api_tokens.
  const agentByHash = db.query("SELECT id, org_id FROM egress_runner_hosts WHERE token_sha256 = ?");
  const invalid = () => new UnauthenticatedError("invalid or expired credentials");

  /** The user with their roles; used for user tokens and (later) sessions. */
  function userActor(userId: string, tokenId: string | null): Actor {
    const u = userById.get(userId) as { id: string; username: string; is_admin: number } | null;
    if (!u) throw invalid();
    const memberships: Record<string, Role> = {};
    for (const m of membershipsOf.all(userId) as { org_id: string; role: Role }[]) memberships[m.org_id] = m.role;
    return { kind: "user", userId: u.id, username: u.username, isAdmin: u.is_admin === 1, tokenId, memberships };
  }

  function tokenActor(token: string): Actor {
    const kind = tokenKind(token);
    if (!kind) throw invalid();
    if (kind === "agent") {
      const host = agentByHash.get(hashToken(token)) as { id: string; org_id: string } | null;
      if (!host) throw invalid();
      return { kind: "agent", tokenId: host.id, orgId: host.org_id, hostId: host.id };
    }
    const row = byHash.get(hashToken(token)) as TokenRow | null;
    const t = now();
    if (!row || row.revoked_at || (row.expires_at && Date.parse(row.expires_at) <= t.getTime())) throw invalid();
    // Build tokens live as long as their build, whose health reports say when it was last heard
    // from; touching each on first use was a write per build admission.
    if (row.kind !== "build" && (!row.last_used_at || t.getTime() - Date.parse(row.last_used_at) > LAST_USED_RESOLUTION_MS)) touch.run(t.toISOString(), row.id);
    switch (row.kind) {
      case "user":
        return userActor(row.user_id!, row.id);
      case "org":
        return { kind: "org-token", tokenId: row.id, orgId: row.org_id! };
      case "project":
        if (!row.project_id || !row.project_org_id) throw invalid();
        return { kind: "project-token", tokenId: row.id, orgId: row.project_org_id, projectId: row.project_id };
      case "oidc": {
        const projects = (tokenProjects.all(row.id) as { project_id: string; org_id: string }[]).map((p) => ({ projectId: p.project_id, orgId: p.org_id }));
        if (projects.length === 0) throw invalid();
        return { kind: "oidc", tokenId: row.id, issuer: null, subject: row.id, projects };
      }
      case "build":
        if (!row.build_id || !row.project_id || !row.project_org_id) throw invalid();
        return { kind: "build-token", tokenId: row.id, orgId: row.project_org_id, projectId: row.project_id, buildId: row.build_id };
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
