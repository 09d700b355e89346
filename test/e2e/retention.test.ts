/**
 * @module test/e2e/retention
 * The compiled `serve` prunes at start and on its timer (retention.*): an old device login, a
 * long-revoked token and an old build's log go, young ones stay, and the build itself stays.
 * Rows are aged by writing the database directly while serve is stopped (and, for the timer,
 * while it runs: SQLite in WAL mode takes the second writer).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { serve, type Served } from "../support/serve.ts";

const DAY = 86400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const work = mkdtempSync(join(tmpdir(), "slipway-retention-"));
const dataDir = join(work, "data");
let s: Served | null = null;
afterAll(async () => {
  if (s && s.proc.exitCode === null) await s.stop();
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});

/** Writes to serve's database (busy-waiting on serve's own writes). */
function withDb<T>(fn: (db: Database) => T): T {
  const db = new Database(join(dataDir, "slipway.db"));
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    return fn(db);
  } finally {
    db.close();
  }
}
const blob = () => crypto.getRandomValues(new Uint8Array(32));
let n = 0;
function age(db: Database, projectId: string, userId: string, tag: string, days: number) {
  db.query(
    "INSERT INTO device_logins (id, device_code_sha256, user_code, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
  ).run(`dev_${tag}`, blob(), `RTNT-${String(++n).padStart(4, "B")}`, ago(days), ago(days));
  db.query(
    "INSERT INTO api_tokens (id, kind, secret_sha256, name, user_id, created_at, revoked_at) VALUES (?, 'user', ?, ?, ?, ?, ?)",
  ).run(`tok_${tag}`, blob(), tag, userId, ago(days + 1), ago(days));
  db.query(
    "INSERT INTO builds (id, project_id, org_id, status, started_by, created_at, finished_at, deadline_at) SELECT ?, id, org_id, 'finished', 'test', ?, ?, ? FROM projects WHERE id = ?",
  ).run(`bld_${tag}`, ago(days), ago(days), ago(days), projectId);
  db.query("INSERT INTO build_logs (build_id, vertex, stream, at, data) VALUES (?, 'v', 1, ?, ?)").run(
    `bld_${tag}`,
    ago(days),
    new TextEncoder().encode("log line\n"),
  );
}
const has = (table: string, id: string) =>
  withDb((db) => db.query(`SELECT 1 FROM ${table} WHERE id = ?`).get(id) !== null);
const logLines = (buildId: string) =>
  withDb((db) => (db.query("SELECT count(*) AS n FROM build_logs WHERE build_id = ?").get(buildId) as { n: number }).n);

describe("retention in serve", () => {
  test("at start and then every retention.interval_minutes, old rows are pruned and young ones kept", async () => {
    const bin = slipwayBinary();
    s = await serve(bin, dataDir, ["--set", "volumes.encryption=none"]);
    const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const project = (await (
      await s.get("/api/v1/orgs/default/projects", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "retained" }),
      })
    ).json()) as { id: string };
    const me = (await (await s.get("/api/v1/me", { headers: { authorization: `Bearer ${admin}` } })).json()) as {
      id: string;
    };
    expect(await s.stop()).toBe(0);

    withDb((db) => {
      age(db, project.id, me.id, "old", 40);
      age(db, project.id, me.id, "young", 0.5);
    });
    s = await serve(bin, dataDir, ["--set", "volumes.encryption=none", "--set", "retention.interval_minutes=1"]);
    // At start: the 40-day-old device login (> 1 day), revoked token (> 30) and build log (> 30) are gone.
    expect(s.logs()).toMatch(/retention: pruned.*"device_logins":1,"sessions":0,"build_logs":1,"api_token_rows":1/);
    expect([
      has("device_logins", "dev_old"),
      has("api_tokens", "tok_old"),
      logLines("bld_old"),
      has("builds", "bld_old"),
    ]).toEqual([false, false, 0, true]);
    expect([has("device_logins", "dev_young"), has("api_tokens", "tok_young"), logLines("bld_young")]).toEqual([
      true,
      true,
      1,
    ]);

    // On the timer: rows aged while serve runs go within a minute.
    withDb((db) => age(db, project.id, me.id, "later", 40));
    expect(has("api_tokens", "tok_later")).toBe(true);
    const deadline = Date.now() + 75_000;
    while (has("api_tokens", "tok_later") && Date.now() < deadline) await Bun.sleep(1000);
    expect([has("device_logins", "dev_later"), has("api_tokens", "tok_later"), logLines("bld_later")]).toEqual([
      false,
      false,
      0,
    ]);
    expect([has("device_logins", "dev_young"), has("api_tokens", "tok_young"), logLines("bld_young")]).toEqual([
      true,
      true,
      1,
    ]);
    expect(
      ((await (await s.get("/api/v1/me", { headers: { authorization: `Bearer ${admin}` } })).json()) as { id: string })
        .id,
    ).toBe(me.id); // live tokens untouched
    expect(await s.stop()).toBe(0);
  }, 150_000);
});
