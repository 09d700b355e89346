/**
 * @module auth/sessions
 * Password login for the web UI: argon2id hashes (Bun.password), and sessions carried in a
 * Secure, HttpOnly, SameSite=Strict cookie whose secret is stored only as SHA-256. Sessions end
 * after 12 h idle or 7 days, on logout, or when revoked.
 */
import type { Database } from "bun:sqlite";
import { InvalidInputError, UnauthenticatedError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { AuditService } from "./audit.ts";
import { hashToken } from "./token-format.ts";

export const SESSION_COOKIE = "slipway_session";
const IDLE_MS = 12 * 3600_000;
const ABSOLUTE_MS = 7 * 24 * 3600_000;
/** Seen-time is refreshed at most this often (keeps most requests read-only). */
const TOUCH_MS = 60_000;
/** Verified against when the user does not exist, so timing does not reveal usernames. A
 * constant with Bun's default argon2id cost (the password behind it is random and unknown):
 * computing one at start-up took ~200 ms and 64 MB. */
const DUMMY_HASH =
  "$argon2id$v=19$m=65536,t=2,p=1$PdpVxcR3EdpwUDyaiou5c2XhNyH0bvWscE0HqxuJdBQ$MsmxhMWmAR/R8fPfsnLMIGDEcHTxgOFG+qOhkBs78NU";

export const MIN_PASSWORD_LENGTH = 12;

export interface SessionInfo {
  id: string;
  user_id: string;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
  ip: string | null;
  user_agent: string | null;
}

export type SessionsService = ReturnType<typeof sessionsServiceFactory>;

export interface SessionsDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  /** orgs/service, which owns the users table (declared here, narrow: auth sits below it). */
  users: {
    passwordHashOf(userId: string): { password_hash: string | null } | null;
    passwordHashByUsername(username: string): { id: string; password_hash: string | null } | null;
    setPasswordHash(userId: string, hash: string): void;
  };
  now?: () => Date;
}

export function sessionsServiceFactory({ db, audit, users, now = () => new Date() }: SessionsDeps) {
  const bySecret = db.query(
    "SELECT id, user_id, expires_at, last_seen_at, revoked_at FROM sessions WHERE secret_sha256 = ?",
  );
  const touch = db.query("UPDATE sessions SET last_seen_at = ? WHERE id = ?");

  return {
    /** Rejects a password too weak to set (before anything is created with it). */
    checkPassword(password: string): void {
      if (password.length < MIN_PASSWORD_LENGTH) {
        throw new InvalidInputError(`passwords need at least ${MIN_PASSWORD_LENGTH} characters`, [
          { pointer: "/password", detail: `at least ${MIN_PASSWORD_LENGTH} characters` },
        ]);
      }
    },

    async setPassword(userId: string, password: string): Promise<void> {
      this.checkPassword(password);
      const hash = await Bun.password.hash(password, { algorithm: "argon2id" });
      users.setPasswordHash(userId, hash);
      audit.record({ actor: `user:${userId}`, action: "user.password", target: userId });
    },

    /** A user changing their own password must prove the current one, once one is set. */
    async changePassword(userId: string, current: string | null, next: string): Promise<void> {
      const row = users.passwordHashOf(userId);
      if (row?.password_hash && !(current !== null && (await Bun.password.verify(current, row.password_hash)))) {
        audit.record({ actor: `user:${userId}`, action: "user.password", outcome: "failure", target: userId });
        throw new UnauthenticatedError("the current password is wrong");
      }
      await this.setPassword(userId, next);
    },

    /** Checks the password and opens a session; returns the cookie secret (once). */
    async login(
      username: string,
      password: string,
      meta: { ip: string | null; userAgent: string | null },
    ): Promise<{ secret: string; session: SessionInfo }> {
      const user = users.passwordHashByUsername(username);
      const ok = await Bun.password.verify(password, user?.password_hash ?? DUMMY_HASH);
      if (!user?.password_hash || !ok) {
        audit.record({
          actor: "anonymous",
          action: "auth.login",
          outcome: "failure",
          ip: meta.ip,
          details: { username },
        });
        throw new UnauthenticatedError("wrong username or password");
      }
      const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
      const t = now();
      const session: SessionInfo = {
        id: newId("ses"),
        user_id: user.id,
        created_at: t.toISOString(),
        expires_at: new Date(t.getTime() + ABSOLUTE_MS).toISOString(),
        last_seen_at: t.toISOString(),
        ip: meta.ip,
        user_agent: meta.userAgent?.slice(0, 200) ?? null,
      };
      db.query(
        "INSERT INTO sessions (id, user_id, secret_sha256, created_at, expires_at, last_seen_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ).run(
        session.id,
        session.user_id,
        hashToken(secret),
        session.created_at,
        session.expires_at,
        session.last_seen_at,
        session.ip,
        session.user_agent,
      );
      audit.record({ actor: `user:${user.id}`, action: "auth.login", target: session.id, ip: meta.ip });
      return { secret, session };
    },

    /** The user id behind a cookie secret, or an UnauthenticatedError. */
    resolve(secret: string): { sessionId: string; userId: string } {
      const row = bySecret.get(hashToken(secret)) as {
        id: string;
        user_id: string;
        expires_at: string;
        last_seen_at: string;
        revoked_at: string | null;
      } | null;
      const t = now().getTime();
      if (!row || row.revoked_at || Date.parse(row.expires_at) <= t || t - Date.parse(row.last_seen_at) > IDLE_MS) {
        throw new UnauthenticatedError("the session has ended; log in again");
      }
      if (t - Date.parse(row.last_seen_at) > TOUCH_MS) touch.run(new Date(t).toISOString(), row.id);
      return { sessionId: row.id, userId: row.user_id };
    },

    /** The user's live sessions: not revoked, not past 7 days, not idle for 12 h (as resolve decides). */
    list(userId: string): SessionInfo[] {
      const t = now().getTime();
      return db
        .query(
          "SELECT id, user_id, created_at, expires_at, last_seen_at, ip, user_agent FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at >= ? ORDER BY created_at DESC",
        )
        .all(userId, new Date(t).toISOString(), new Date(t - IDLE_MS).toISOString()) as SessionInfo[];
    },

    /** Deletes at most `limit` sessions that expired or were revoked before `cutoff` (retention); returns how many. */
    pruneEnded(cutoff: Date, limit: number): number {
      return db
        .query(
          "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1 LIMIT ?2)",
        )
        .run(cutoff.toISOString(), limit).changes;
    },

    revoke(sessionId: string, userId: string): boolean {
      const r = db
        .query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
        .run(now().toISOString(), sessionId, userId);
      if (r.changes > 0) audit.record({ actor: `user:${userId}`, action: "auth.logout", target: sessionId });
      return r.changes > 0;
    },
  };
}
