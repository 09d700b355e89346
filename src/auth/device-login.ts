/**
 * @module auth/device-login
 * `slipway login` without a token: the CLI starts a device login and polls with a secret
 * device code; the person approves the short user code in the browser while logged in, and the
 * next poll hands the CLI a fresh user token — once. Codes live 10 minutes.
 * Against phishing (someone else's login link sent to a victim): no link carries the code for
 * the page to fill in — the person types what their own terminal shows — and the page shows
 * where the request came from (address, user agent, time). Starts are rate-limited per address
 * here, so the REST start and the depot CLI's StartLogin share one limit.
 */
import type { Database } from "bun:sqlite";
import { SlipwayError, NotFoundError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Actor } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import { RateLimitedError, rateLimiterFactory, type RateLimiter } from "./rate-limit.ts";
import type { TokensService } from "./api-tokens.ts";
import { hashToken } from "./token-format.ts";

const LIFETIME_MS = 10 * 60_000;
const INTERVAL_S = 2;
/** auth.device_token_days: see src/config/schema.ts for why 30. */
export const DEFAULT_DEVICE_TOKEN_LIFETIME_MS = 30 * 86400_000;
/** Starts per client address per minute (an anonymous call that writes a row). */
const STARTS_PER_MINUTE = 10;
/** No vowels (no accidental words), no look-alikes (0/O, 1/I/L). */
const USER_CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ";

/** The device login ended (expired, denied or already used): the CLI must start again. */
export class DeviceLoginGoneError extends SlipwayError {
  override name = "DeviceLoginGoneError";
}

interface Row {
  id: string;
  user_code: string;
  client_name: string | null;
  ip: string | null;
  user_agent: string | null;
  created_at: string;
  expires_at: string;
  last_poll_at: string | null;
  approved_by: string | null;
  approved_at: string | null;
  denied_at: string | null;
  consumed_at: string | null;
}

export type PollResult = { status: "pending" } | { status: "approved"; token: string; token_id: string };

export type DeviceLoginService = ReturnType<typeof deviceLoginServiceFactory>;

export interface DeviceLoginDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  tokens: Pick<TokensService, "create">;
  /** How long an approved login's user token lives (auth.device_token_days). */
  tokenLifetimeMs?: number;
  /** Throttles starts per address; default 10 a minute. */
  starts?: RateLimiter;
  now?: () => Date;
}

export function deviceLoginServiceFactory({
  db,
  audit,
  tokens,
  tokenLifetimeMs = DEFAULT_DEVICE_TOKEN_LIFETIME_MS,
  starts = rateLimiterFactory({ limit: STARTS_PER_MINUTE, windowMs: 60_000 }),
  now = () => new Date(),
}: DeviceLoginDeps) {
  const byUserCode = db.query("SELECT * FROM device_logins WHERE user_code = ?");
  const live = (r: Row | null): r is Row =>
    !!r && !r.denied_at && !r.consumed_at && Date.parse(r.expires_at) > now().getTime();

  function userCode(): string {
    let s = "";
    for (const b of crypto.getRandomValues(new Uint8Array(16))) {
      if (b < 247) s += USER_CODE_ALPHABET[b % USER_CODE_ALPHABET.length];
      if (s.length === 8) break;
    }
    return s.length === 8 ? `${s.slice(0, 4)}-${s.slice(4)}` : userCode();
  }

  /** Accepts "bcdf ghjk", "BCDFGHJK", "BCDF-GHJK". */
  const normalize = (code: string) => {
    const c = code.toUpperCase().replace(/[^A-Z]/g, "");
    return c.length === 8 ? `${c.slice(0, 4)}-${c.slice(4)}` : c;
  };

  function findLive(code: string): Row {
    const r = byUserCode.get(normalize(code)) as Row | null;
    if (!live(r)) throw new NotFoundError("no such device login, or it has expired");
    return r;
  }

  return {
    /** The answer carries no link with the code in it (RFC 8628's verification_uri_complete):
     * a link that fills the code in is exactly what a phisher sends. */
    start(input: { clientName: string | null; ip: string | null; userAgent: string | null }, publicUrl: string) {
      starts.hit([`ip:${input.ip ?? "unknown"}`]);
      const deviceCode = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
      const code = userCode();
      const t = now();
      db.query(
        "INSERT INTO device_logins (id, device_code_sha256, user_code, client_name, ip, user_agent, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ).run(
        newId("dev"),
        hashToken(deviceCode),
        code,
        input.clientName,
        input.ip,
        input.userAgent?.slice(0, 200) ?? null,
        t.toISOString(),
        new Date(t.getTime() + LIFETIME_MS).toISOString(),
      );
      const uri = `${publicUrl.replace(/\/$/, "")}/device`;
      return {
        device_code: deviceCode,
        user_code: code,
        verification_uri: uri,
        expires_in: LIFETIME_MS / 1000,
        interval: INTERVAL_S,
      };
    },

    poll(deviceCode: string): PollResult {
      return db.transaction((): PollResult => {
        const r = db
          .query("SELECT * FROM device_logins WHERE device_code_sha256 = ?")
          .get(hashToken(deviceCode)) as Row | null;
        if (!live(r))
          throw new DeviceLoginGoneError(
            "this device login has expired, was denied or was already used; run 'slipway login' again",
          );
        const t = now();
        if (r.last_poll_at && t.getTime() - Date.parse(r.last_poll_at) < INTERVAL_S * 1000 - 250) {
          throw new RateLimitedError(`slow down: poll at most every ${INTERVAL_S} s`, INTERVAL_S);
        }
        db.query("UPDATE device_logins SET last_poll_at = ? WHERE id = ?").run(t.toISOString(), r.id);
        if (!r.approved_by) return { status: "pending" };
        db.query("UPDATE device_logins SET consumed_at = ? WHERE id = ?").run(t.toISOString(), r.id);
        const created = tokens.create(
          {
            kind: "user",
            name: `device login${r.client_name ? ` (${r.client_name})` : ""}`,
            expiresAt: new Date(t.getTime() + tokenLifetimeMs),
            userId: r.approved_by,
            createdBy: r.approved_by,
          },
          `user:${r.approved_by}`,
          r.ip,
        );
        return { status: "approved", token: created.token, token_id: created.metadata.id };
      })();
    },

    /** What the approving person is shown before they decide. */
    describe(code: string) {
      const r = findLive(code);
      return {
        user_code: r.user_code,
        client_name: r.client_name,
        ip: r.ip,
        user_agent: r.user_agent,
        created_at: r.created_at,
        expires_at: r.expires_at,
        approved: r.approved_by !== null,
        token_lifetime_days: Math.round(tokenLifetimeMs / 86400_000),
      };
    },

    approve(code: string, actor: Extract<Actor, { kind: "user" }>, ip: string | null): void {
      const r = findLive(code);
      if (r.approved_by) throw new NotFoundError("no such device login, or it has expired");
      db.query("UPDATE device_logins SET approved_by = ?, approved_at = ? WHERE id = ?").run(
        actor.userId,
        now().toISOString(),
        r.id,
      );
      audit.record({
        actor,
        action: "auth.device.approve",
        target: r.id,
        ip,
        details: { client_name: r.client_name, client_ip: r.ip, client_user_agent: r.user_agent },
      });
    },

    deny(code: string, actor: Extract<Actor, { kind: "user" }>, ip: string | null): void {
      const r = findLive(code);
      db.query("UPDATE device_logins SET denied_at = ? WHERE id = ?").run(now().toISOString(), r.id);
      audit.record({ actor, action: "auth.device.deny", target: r.id, ip });
    },

    /** Deletes at most `limit` device logins that expired before `cutoff` (retention); returns how many. */
    pruneExpired(cutoff: Date, limit: number): number {
      return db
        .query("DELETE FROM device_logins WHERE id IN (SELECT id FROM device_logins WHERE expires_at < ?1 LIMIT ?2)")
        .run(cutoff.toISOString(), limit).changes;
    },
  };
}
