/**
 * @module auth/expiry.test
 * Every credential that ends with time, on a clock the test moves: web sessions (12 h idle, 7 days
 * at most), device logins (10 minutes, the poll interval, the start limit per address), and the
 * user tokens device logins hand out. Real SQLite, real services; only time is the test's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { NotFoundError, UnauthenticatedError } from "../errors.ts";
import { egressServiceFactory } from "../egress/service.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import type { Actor } from "./actor.ts";
import { auditServiceFactory } from "./audit.ts";
import { authServiceFactory } from "./authenticate.ts";
import { DeviceLoginGoneError, deviceLoginServiceFactory } from "./device-login.ts";
import { RateLimitedError, rateLimiterFactory } from "./rate-limit.ts";
import { sessionsServiceFactory } from "./sessions.ts";
import { tokensServiceFactory } from "./api-tokens.ts";

/** The authentication service as serve wires it: the real owners of the tables it reads. */
function authOn({ db, now }: { db: Database; now?: () => Date }) {
  const audit = auditServiceFactory({ db });
  const users = orgsServiceFactory({ db, audit });
  const runnerHosts = egressServiceFactory({ db, audit, applianceHosts: ["localhost"], extraAllow: [] });
  return authServiceFactory({
    tokens: tokensServiceFactory({ db, audit }),
    users,
    projects: projectsServiceFactory({ db, audit, orgs: users }),
    runnerHosts,
    ...(now ? { now } : {}),
  });
}

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const PASSWORD = "a long enough passphrase";

let dir: string;
let db: Database;
let clock = Date.parse("2026-11-22T10:00:00Z");
const now = () => new Date(clock);
let userId = "";
let user: Extract<Actor, { kind: "user" }>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-expiry-"));
  db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  const audit = auditServiceFactory({ db, now });
  const orgs = orgsServiceFactory({ db, audit });
  userId = orgs.createUser({ username: "alice" }, "system:test").id;
  await sessionsServiceFactory({ db, audit, users: orgs, now }).setPassword(userId, PASSWORD);
  user = authOn({ db, now }).userActor(userId, null) as Extract<Actor, { kind: "user" }>;
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const services = () => {
  const audit = auditServiceFactory({ db, now });
  const tokens = tokensServiceFactory({ db, audit, now });
  return {
    sessions: sessionsServiceFactory({ db, audit, users: orgsServiceFactory({ db, audit }), now }),
    auth: authOn({ db, now }),
    tokens,
    logins: deviceLoginServiceFactory({
      db,
      audit,
      tokens,
      tokenLifetimeMs: 30 * DAY,
      starts: rateLimiterFactory({ limit: 10, windowMs: 60_000, now: () => clock }),
      now,
    }),
  };
};

const ended = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof UnauthenticatedError ? e.message : `unexpected ${(e as Error).name}: ${(e as Error).message}`;
  }
  return "still valid";
};

describe("sessions", () => {
  test("one idle for 12 hours has ended; using it within that keeps it going", async () => {
    const { sessions } = services();
    const { secret, session } = await sessions.login("alice", PASSWORD, { ip: "192.0.2.1", userAgent: "test" });
    clock += 12 * HOUR;
    expect(sessions.resolve(secret).userId).toBe(userId); // exactly 12 h idle: still in
    clock += 11 * HOUR; // 11 h since that use
    expect(sessions.resolve(secret).userId).toBe(userId);
    clock += 12 * HOUR + 1;
    expect(ended(() => sessions.resolve(secret))).toBe("the session has ended; log in again");
    // An ended session is not listed as one of the user's sessions.
    expect(sessions.list(userId).map((s) => s.id)).not.toContain(session.id);
  });

  test("one in daily use ends 7 days after it began, and leaves the list", async () => {
    const { sessions } = services();
    const { secret, session } = await sessions.login("alice", PASSWORD, { ip: null, userAgent: null });
    const began = clock;
    while (clock + 10 * HOUR < began + 7 * DAY) {
      clock += 10 * HOUR;
      expect(sessions.resolve(secret).sessionId).toBe(session.id);
    }
    clock = began + 7 * DAY - 1;
    expect(sessions.resolve(secret).sessionId).toBe(session.id);
    expect(sessions.list(userId).map((s) => s.id)).toContain(session.id);
    clock = began + 7 * DAY;
    expect(ended(() => sessions.resolve(secret))).toBe("the session has ended; log in again");
    expect(sessions.list(userId).map((s) => s.id)).not.toContain(session.id);
  });

  test("a revoked one has ended at once, with the same answer", async () => {
    const { sessions } = services();
    const { secret, session } = await sessions.login("alice", PASSWORD, { ip: null, userAgent: null });
    expect(sessions.revoke(session.id, userId)).toBe(true);
    expect(ended(() => sessions.resolve(secret))).toBe("the session has ended; log in again");
    expect(ended(() => sessions.resolve("no-such-secret"))).toBe("the session has ended; log in again");
  });
});

describe("device logins", () => {
  const tokenCount = () => (db.query("SELECT count(*) AS n FROM api_tokens").get() as { n: number }).n;

  test("a code lives 10 minutes: after that it cannot be described, approved, denied or polled", () => {
    const { logins } = services();
    const started = logins.start({ clientName: "cli", ip: "192.0.2.2", userAgent: null }, "https://slipway.test");
    expect(started.expires_in).toBe(600);
    clock += 10 * 60_000 - 1;
    expect(logins.describe(started.user_code).approved).toBe(false);
    expect(logins.poll(started.device_code)).toEqual({ status: "pending" });
    clock += 1;
    expect(() => logins.describe(started.user_code)).toThrow(NotFoundError);
    expect(() => logins.approve(started.user_code, user, null)).toThrow(NotFoundError);
    expect(() => logins.deny(started.user_code, user, null)).toThrow(NotFoundError);
    expect(() => logins.poll(started.device_code)).toThrow(DeviceLoginGoneError);
  });

  test("approved in time but polled too late: no token is made", () => {
    const { logins } = services();
    const started = logins.start({ clientName: "cli", ip: "192.0.2.3", userAgent: null }, "https://slipway.test");
    clock += 9 * 60_000;
    logins.approve(started.user_code, user, null);
    clock += 60_000;
    const before = tokenCount();
    expect(() => logins.poll(started.device_code)).toThrow(DeviceLoginGoneError);
    expect(tokenCount()).toBe(before);
  });

  test("polls closer than the interval are told to slow down; the token handed out ends after its lifetime", async () => {
    const { logins, auth } = services();
    const started = logins.start({ clientName: "cli", ip: "192.0.2.4", userAgent: null }, "https://slipway.test");
    expect(logins.poll(started.device_code)).toEqual({ status: "pending" });
    clock += 1000;
    expect(() => logins.poll(started.device_code)).toThrow(RateLimitedError);
    clock += 1000;
    logins.approve(started.user_code, user, null);
    const approved = logins.poll(started.device_code);
    if (approved.status !== "approved") throw new Error("expected the approved login's token");
    const issuedAt = clock;
    expect(() => logins.poll(started.device_code)).toThrow(DeviceLoginGoneError); // handed out once
    clock = issuedAt + 30 * DAY - 1;
    expect((await auth.authenticate(`Bearer ${approved.token}`)).kind).toBe("user");
    clock = issuedAt + 30 * DAY;
    const late = await auth.authenticate(`Bearer ${approved.token}`).catch((e: Error) => e);
    expect(late).toBeInstanceOf(UnauthenticatedError);
    // Expired reads exactly like unknown.
    expect((late as Error).message).toBe(
      ((await auth.authenticate(`Bearer slw_u_${"x".repeat(33)}`).catch((e: Error) => e)) as Error).message,
    );
  });

  test("starts are limited per address per minute; the next minute has its own allowance", () => {
    const { logins } = services();
    const start = () => logins.start({ clientName: null, ip: "192.0.2.5", userAgent: null }, "https://slipway.test");
    for (let i = 0; i < 10; i++) start();
    expect(start).toThrow(RateLimitedError);
    clock += 59_000;
    const refused = (() => {
      try {
        start();
      } catch (e) {
        return e;
      }
    })();
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect((refused as RateLimitedError).retryAfterSeconds).toBe(1); // the minute ends in 1 s
    clock += 1000;
    for (let i = 0; i < 10; i++) expect(start).not.toThrow();
    expect(start).toThrow(RateLimitedError); // the new minute is limited as the first was
  });
});

describe("tokens", () => {
  test("a token ends at its expiry; one minted by it cannot outlive it", async () => {
    const { tokens, auth } = services();
    const parent = tokens.create(
      { kind: "user", name: "day", expiresAt: new Date(clock + DAY), userId, createdBy: userId },
      "system:test",
    );
    const parentActor = await auth.authenticate(`Bearer ${parent.token}`);
    const child = tokens.create(
      { kind: "user", name: "child", expiresAt: null, userId, createdBy: userId },
      parentActor,
    );
    expect(child.metadata.expires_at).toBe(parent.metadata.expires_at);
    expect(() =>
      tokens.create(
        { kind: "user", name: "longer", expiresAt: new Date(clock + 2 * DAY), userId, createdBy: userId },
        parentActor,
      ),
    ).toThrow(/cannot outlive/);
    clock += DAY - 1;
    expect((await auth.authenticate(`Bearer ${child.token}`)).kind).toBe("user");
    clock += 1;
    for (const t of [parent.token, child.token])
      expect(await auth.authenticate(`Bearer ${t}`).catch((e: Error) => e)).toBeInstanceOf(UnauthenticatedError);
  });
});
