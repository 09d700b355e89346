/**
 * @module test/e2e/migrations
 * Upgrades on real files with the compiled binary: a version-1 data dir (test/fixtures/v1)
 * is migrated with a backup taken first and keeps working; a database newer than the binary
 * is refused and left untouched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { freePort, runSlipway, serve } from "../support/serve.ts";
import { embeddedMigrations } from "../../src/db/index.ts";

const HEAD = embeddedMigrations.length;
const AFTER_V1 = embeddedMigrations.slice(1).map((m) => ({ version: m.version, name: m.name }));

const FIXTURE = join(import.meta.dir, "..", "fixtures", "v1");
let bin: string;
let work: string;

/** A private copy of the v1 data dir (git does not keep the 0600 modes, so restore them). */
function v1DataDir(): string {
  const dir = join(work, crypto.randomUUID());
  cpSync(FIXTURE, dir, { recursive: true });
  chmodSync(dir, 0o700);
  chmodSync(join(dir, "master.key"), 0o600);
  return dir;
}

const version = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  } finally {
    db.close();
  }
};
const sha = (file: string) => new Bun.CryptoHasher("sha256").update(readFileSync(file)).digest("hex");

beforeAll(() => {
  bin = slipwayBinary();
  work = mkdtempSync(join(tmpdir(), "slipway-mig-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("upgrading a version-1 database", () => {
  test("migrate --dry-run lists what would run and changes nothing", async () => {
    const dir = v1DataDir();
    const before = sha(join(dir, "slipway.db"));
    const r = await runSlipway(bin, ["migrate", "--dry-run", "--json", "--data-dir", dir]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ current: 1, head: HEAD, pending: AFTER_V1, applied: [] });
    expect(sha(join(dir, "slipway.db"))).toBe(before);
    expect(readdirSync(dir).filter((f) => f.endsWith(".bak"))).toEqual([]);
  });

  test("migrate backs up first, then applies", async () => {
    const dir = v1DataDir();
    const before = sha(join(dir, "slipway.db"));
    const r = await runSlipway(bin, ["migrate", "--json", "--data-dir", dir]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.current).toBe(HEAD);
    expect(out.applied).toEqual(AFTER_V1);
    expect(out.backup).toMatch(/slipway\.db\.v1-\d{8}T\d{6}Z\.bak$/);
    expect(version(out.backup)).toBe(1);
    expect(version(join(dir, "slipway.db"))).toBe(HEAD);
    // The backup holds the same rows as the original.
    const b = new Database(out.backup, { readonly: true });
    expect((b.query("SELECT count(*) AS n FROM certificate_authorities").get() as { n: number }).n).toBe(2);
    b.close();
    expect(before).not.toBe(sha(join(dir, "slipway.db")));
    const again = await runSlipway(bin, ["migrate", "--data-dir", dir]);
    expect(again.stdout).toContain("nothing to do");
  });

  test("serve upgrades on start, keeps the CA and the admin token working", async () => {
    const dir = v1DataDir();
    const caBefore = readFileSync(join(dir, "ca.pem"), "utf8");
    const token = readFileSync(join(dir, "initial-admin-token"), "utf8").trim();
    const s = await serve(bin, dir);
    try {
      expect(s.logs()).toContain("backed up database before migrating");
      expect(readdirSync(dir).filter((f) => /^slipway\.db\.v1-.*\.bak$/.test(f))).toHaveLength(1);
      expect(readFileSync(join(dir, "ca.pem"), "utf8")).toBe(caBefore);
      const me = await s.get("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      const ready = (await (await s.get("/readyz")).json()) as any;
      expect(ready.checks["database:migrations"][0]).toMatchObject({ status: "pass", observedValue: HEAD });
    } finally {
      expect(await s.stop()).toBe(0);
    }
    // The API certificate issued at start is in the new audit table.
    const db = new Database(join(dir, "slipway.db"), { readonly: true });
    expect(db.query("SELECT requester, usage FROM certificate_issuances ORDER BY requester").all()).toEqual([
      { requester: "appliance:api-server", usage: "server" },
      { requester: "appliance:build-endpoint", usage: "server" },
    ]);
    db.close();
  });
});

describe("a database newer than the binary", () => {
  test("serve and migrate refuse it with a clear message and leave it untouched", async () => {
    const dir = v1DataDir();
    const db = new Database(join(dir, "slipway.db"));
    db.run("PRAGMA user_version = 99");
    db.close();
    const before = sha(join(dir, "slipway.db"));
    const s = await runSlipway(bin, [
      "serve",
      "--data-dir",
      dir,
      "--listen",
      `127.0.0.1:${await freePort()}`,
      "--build-listen",
      `127.0.0.1:${await freePort()}`,
    ]);
    expect(s.code).toBe(1);
    expect(s.stderr.trim().split("\n")).toHaveLength(1);
    expect(s.stderr).toContain(`the database is at schema version 99, newer than this slipway knows (${HEAD})`);
    const m = await runSlipway(bin, ["migrate", "--data-dir", dir]);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain("newer than this slipway knows");
    expect(sha(join(dir, "slipway.db"))).toBe(before);
    expect(readdirSync(dir).filter((f) => f.endsWith(".bak"))).toEqual([]);
  });
});

describe("a data dir whose master key is gone", () => {
  test("serve refuses rather than generating a key that cannot open the sealed secrets", async () => {
    const dir = v1DataDir();
    rmSync(join(dir, "master.key"));
    const s = await runSlipway(bin, [
      "serve",
      "--data-dir",
      dir,
      "--listen",
      `127.0.0.1:${await freePort()}`,
      "--build-listen",
      `127.0.0.1:${await freePort()}`,
    ]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("restore master.key from your backup");
    expect(readdirSync(dir)).not.toContain("master.key");
  });

  test("a master key readable by others is refused", async () => {
    const dir = v1DataDir();
    chmodSync(join(dir, "master.key"), 0o644);
    const s = await runSlipway(bin, [
      "serve",
      "--data-dir",
      dir,
      "--listen",
      `127.0.0.1:${await freePort()}`,
      "--build-listen",
      `127.0.0.1:${await freePort()}`,
    ]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("chmod 600");
  });
});
