/**
 * @module auth/authenticate
 * Turns a presented credential into an actor. Unknown, expired and revoked tokens all become
 * the same UnauthenticatedError, so a caller learns nothing about which it was.
 */
import type { Database } from "bun:sqlite";
import { UnauthenticatedError } from "../errors.ts";
import { hashToken, tokenKind } from "./tokens.ts";

export type Actor =
  | { kind: "anonymous" }
  | { kind: "user"; userId: string; username: string; isAdmin: boolean; tokenId: string };

/** last_used_at is advisory: write it at most this often per token to keep reads read-only. */
const LAST_USED_RESOLUTION_MS = 60_000;

export interface AuthDeps {
  db: Database;
  now?: () => Date;
}

export type AuthService = ReturnType<typeof authServiceFactory>;

export function authServiceFactory({ db, now = () => new Date() }: AuthDeps) {
  const byHash = db.query(
    `SELECT t.id, t.kind, t.expires_at, t.revoked_at, t.last_used_at, u.id AS user_id, u.username, u.is_admin
       FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id
      WHERE t.secret_sha256 = ?`,
  );
  const touch = db.query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?");

  return {
    /** `authorization` is the raw header value (or null). */
    authenticate(authorization: string | null): Actor {
      if (!authorization) return { kind: "anonymous" };
      const m = /^Bearer\s+(\S+)$/i.exec(authorization);
      if (!m) throw new UnauthenticatedError("the Authorization header must be 'Bearer <token>'");
      const token = m[1]!;
      if (!tokenKind(token)) throw new UnauthenticatedError("invalid or expired credentials");
      const row = byHash.get(hashToken(token)) as {
        id: string;
        kind: string;
        expires_at: string | null;
        revoked_at: string | null;
        last_used_at: string | null;
        user_id: string | null;
        username: string | null;
        is_admin: number | null;
      } | null;
      const t = now();
      if (!row || row.revoked_at || (row.expires_at && Date.parse(row.expires_at) <= t.getTime())) {
        throw new UnauthenticatedError("invalid or expired credentials");
      }
      if (!row.last_used_at || t.getTime() - Date.parse(row.last_used_at) > LAST_USED_RESOLUTION_MS) {
        touch.run(t.toISOString(), row.id);
      }
      if (row.kind === "user" && row.user_id) {
        return { kind: "user", userId: row.user_id, username: row.username!, isAdmin: row.is_admin === 1, tokenId: row.id };
      }
      // Other kinds arrive with the identity issue; until then they authenticate as nothing.
      throw new UnauthenticatedError("invalid or expired credentials");
    },
  };
}
