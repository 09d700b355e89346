/**
 * Retention on a real, migrated SQLite file: rows past their age go, young ones and whatever is
 * still usable stay, 0 keeps a kind for ever, and a backlog larger than one batch is emptied.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { silentLogger } from "../log/logger.ts";
import { tokensServiceFactory } from "../auth/api-tokens.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { deviceLoginServiceFactory } from "../auth/device-login.ts";
import { sessionsServiceFactory } from "../auth/sessions.ts";
import { buildLogsFactory } from "../builds/logs.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { retentionServiceFactory, type RetentionSettings } from "./service.ts";

const NOW = Date.parse("2026-11-30T12:00:00Z");
const DAY = 86400_000;
const at = (daysAgo: number) => new Date(NOW - daysAgo * DAY).toISOString();
const SETTINGS: RetentionSettings = {
  device_logins_days: 1,
  sessions_days: 7,
  tokens_days: 30,
  build_logs_days: 30,
  interval_minutes: 60,
};

let dir: string;
let db: Database;
let seq = 0;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "slipway-retention-"));
  db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  db.query("INSERT INTO users (id, username, created_at) VALUES ('usr_1', 'u', ?)").run(at(400));
  db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES ('org_1', 'o', 'o', ?)").run(at(400));
  db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES ('prj_1', 'org_1', 'p', ?)").run(at(400));
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const blob = () => crypto.getRandomValues(new Uint8Array(32));
const deviceLogin = (id: string, expiredDaysAgo: number) =>
  db
    .query(
      "INSERT INTO device_logins (id, device_code_sha256, user_code, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .run(id, blob(), `C-${seq++}`, at(expiredDaysAgo), at(expiredDaysAgo));
const session = (id: string, expires: string, revoked: string | null = null) =>
  db
    .query(
      "INSERT INTO sessions (id, user_id, secret_sha256, created_at, expires_at, last_seen_at, revoked_at) VALUES (?, 'usr_1', ?, ?, ?, ?, ?)",
    )
    .run(id, blob(), at(400), expires, at(400), revoked);
const token = (id: string, expires: string | null, revoked: string | null = null) =>
  db
    .query(
      "INSERT INTO api_tokens (id, kind, secret_sha256, name, user_id, created_at, expires_at, revoked_at) VALUES (?, 'user', ?, 't', 'usr_1', ?, ?, ?)",
    )
    .run(id, blob(), at(400), expires, revoked);
const build = (id: string, status: string, finished: string | null, logLines = 2) => {
  db.query(
    "INSERT INTO builds (id, project_id, org_id, status, started_by, created_at, finished_at, deadline_at) VALUES (?, 'prj_1', 'org_1', ?, 'user:usr_1', ?, ?, ?)",
  ).run(id, status, at(400), finished, at(399));
  for (let i = 0; i < logLines; i++)
    db.query("INSERT INTO build_logs (build_id, vertex, stream, at, data) VALUES (?, 'v', 1, ?, ?)").run(
      id,
      at(400),
      new TextEncoder().encode(`line ${i}\n`),
    );
};
const ids = (table: string) =>
  (db.query(`SELECT id FROM ${table} ORDER BY id`).all() as { id: string }[]).map((r) => r.id);
const logsOf = (buildId: string) =>
  (db.query("SELECT count(*) AS n FROM build_logs WHERE build_id = ?").get(buildId) as { n: number }).n;
const retention = (settings = SETTINGS) => {
  const audit = auditServiceFactory({ db });
  const tokens = tokensServiceFactory({ db, audit });
  return retentionServiceFactory({
    deviceLogins: deviceLoginServiceFactory({ db, audit, tokens }),
    sessions: sessionsServiceFactory({ db, audit, users: orgsServiceFactory({ db, audit }) }),
    tokens,
    buildLogs: buildLogsFactory({ db }),
    log: silentLogger,
    settings,
    now: () => new Date(NOW),
  });
};

describe("retention", () => {
  test("prunes device logins, sessions, tokens and build logs past their age; keeps young and usable ones", async () => {
    deviceLogin("dev_old", 2);
    deviceLogin("dev_young", 0.5);
    deviceLogin("dev_live", -0.005); // its code is still valid
    session("ses_expired_old", at(8));
    session("ses_revoked_old", at(-20), at(10));
    session("ses_expired_young", at(3));
    session("ses_live", at(-5));
    token("tok_expired_old", at(31));
    token("tok_revoked_old", null, at(45));
    token("tok_expired_young", at(29));
    token("tok_revoked_young", null, at(2));
    token("tok_forever", null);
    db.query("INSERT INTO api_token_projects (token_id, project_id) VALUES ('tok_expired_old', 'prj_1')").run();
    build("bld_old", "finished", at(31));
    build("bld_young", "failed", at(29));
    build("bld_running", "running", null);

    const pruned = await retention().prune();
    expect(pruned).toEqual({ device_logins: 1, sessions: 2, tokens: 2, build_logs: 2 });
    expect(ids("device_logins")).toEqual(["dev_live", "dev_young"]);
    expect(ids("sessions")).toEqual(["ses_expired_young", "ses_live"]);
    expect(ids("api_tokens")).toEqual(["tok_expired_young", "tok_forever", "tok_revoked_young"]);
    expect((db.query("SELECT count(*) AS n FROM api_token_projects").get() as { n: number }).n).toBe(0); // cascaded
    // The builds stay (history, audit); only the old build's log goes.
    expect(ids("builds")).toEqual(["bld_old", "bld_running", "bld_young"]);
    expect([logsOf("bld_old"), logsOf("bld_young"), logsOf("bld_running")]).toEqual([0, 2, 2]);

    expect(await retention().prune()).toEqual({ device_logins: 0, sessions: 0, tokens: 0, build_logs: 0 }); // idempotent
  });

  test("0 keeps a kind for ever", async () => {
    token("tok_ancient", at(3000));
    build("bld_ancient", "finished", at(3000));
    const pruned = await retention({ ...SETTINGS, tokens_days: 0, build_logs_days: 0 }).prune();
    expect(pruned).toEqual({ device_logins: 0, sessions: 0, tokens: 0, build_logs: 0 });
    expect(ids("api_tokens")).toEqual(["tok_ancient"]);
    expect(logsOf("bld_ancient")).toBe(2);
  });

  test("a backlog larger than one batch is emptied in one pass, yielding between batches; start() prunes at once", async () => {
    build("bld_big", "canceled", at(100), 12_000);
    build("bld_kept", "finished", at(1), 3);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    const pass = retention().prune();
    expect(logsOf("bld_big")).toBe(12_000 - 5000); // one batch, then the event loop's turn
    expect((await pass).build_logs).toBe(12_000);
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(0);
    expect(logsOf("bld_big")).toBe(0);
    expect(logsOf("bld_kept")).toBe(3);

    build("bld_big2", "failed", at(100), 10);
    const stop = retention().start();
    stop();
    expect(logsOf("bld_big2")).toBe(0); // a small pass completes before start() returns
  });
});
