/**
 * @module test/e2e/restore.test
 * `slipway restore` with the compiled binary on real files: backup → change → restore → serve
 * shows the old data, with the replaced database kept aside whole; refused (exit 1, nothing
 * changed, nothing left behind) while serve runs, for a file that is not SQLite, a truncated
 * backup, another appliance's backup (another master key), a schema newer than the binary, and a
 * SQLite file that is not Slipway's; a disaster recovery into a data dir with no database; an
 * older schema restored as it is and migrated by the next serve, which records the releases that
 * served the data dir (server_versions) and names the one before it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { embeddedMigrations } from "../../src/db/index.ts";
import { VERSION } from "../../src/version.ts";
import { slipwayBinary } from "../support/binary.ts";
import { runSlipway, serve } from "../support/serve.ts";

const HEAD = embeddedMigrations.length;
let bin: string;
let work: string;
const sha = (file: string) => new Bun.CryptoHasher("sha256").update(readFileSync(file)).digest("hex");

/** The organizations' slugs in a database file. */
function orgSlugs(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.query("SELECT slug FROM organizations ORDER BY slug").all() as { slug: string }[]).map((r) => r.slug);
  } finally {
    db.close();
  }
}

/** A data dir that has served once, with organization `before`, and a backup of it. */
async function servedDataDir(name: string): Promise<{ dataDir: string; backup: string }> {
  const dataDir = join(work, name);
  const s = await serve(bin, dataDir);
  try {
    const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const r = await s.get("/api/v1/orgs", {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ slug: "before", name: "Before" }),
    });
    expect(r.status).toBe(201);
  } finally {
    expect(await s.stop()).toBe(0);
  }
  const backup = join(work, `${name}.backup.db`);
  const b = await runSlipway(bin, ["backup", "--data-dir", dataDir, "--out", backup]);
  expect(b.code).toBe(0);
  return { dataDir, backup };
}

/** What restore must leave alone when it refuses: the database and the data dir's listing. */
function snapshot(dataDir: string) {
  return { db: sha(join(dataDir, "slipway.db")), files: readdirSync(dataDir).sort() };
}

beforeAll(() => {
  bin = slipwayBinary();
  work = mkdtempSync(join(tmpdir(), "slipway-restore-"));
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("restore", () => {
  test("backup, change, restore: serve shows the old data; the replaced database is kept aside whole", async () => {
    const { dataDir, backup } = await servedDataDir("a");
    // The change made after the backup.
    const s = await serve(bin, dataDir);
    const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const auth = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
    expect(
      (
        await s.get("/api/v1/orgs", {
          method: "POST",
          headers: auth,
          body: JSON.stringify({ slug: "after", name: "A" }),
        })
      ).status,
    ).toBe(201);

    // Refused while serve runs: exit 1, a clear line, nothing changed (serve itself writes the
    // database meanwhile, so its listing is compared, and the change is checked to be there after).
    const before = readdirSync(dataDir).sort();
    const busy = await runSlipway(bin, ["restore", "--from", backup, "--data-dir", dataDir]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/cannot restore now: data dir .* is in use by another slipway serve \(pid \d+\)/);
    expect(readdirSync(dataDir).sort()).toEqual(before);
    expect(await s.stop()).toBe(0);
    expect(orgSlugs(join(dataDir, "slipway.db"))).toContain("after");

    const r = await runSlipway(bin, ["restore", "--from", backup, "--data-dir", dataDir, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { kept_aside: string; schema_version: number; migrates_on_next_serve: boolean };
    expect(out.schema_version).toBe(HEAD);
    expect(out.migrates_on_next_serve).toBe(false);
    expect(out.kept_aside).toMatch(/slipway\.db\.before-restore-\d{8}T\d{6}Z$/);
    // The kept database is whole on its own (its WAL folded in): it has the change.
    expect(orgSlugs(out.kept_aside)).toContain("after");
    expect(readdirSync(dataDir).filter((f) => f.includes(".tmp"))).toEqual([]);

    const again = await serve(bin, dataDir);
    try {
      const slugs = JSON.stringify(await (await again.get("/api/v1/orgs", { headers: auth })).json());
      expect(slugs).toContain('"before"');
      expect(slugs).not.toContain('"after"');
    } finally {
      expect(await again.stop()).toBe(0);
    }
  }, 180_000);

  test("refuses what is not this data dir's Slipway backup, and changes nothing", async () => {
    const { dataDir, backup } = await servedDataDir("b");
    const other = await servedDataDir("c"); // another appliance: another master key

    const notSqlite = join(work, "notes.txt");
    writeFileSync(notSqlite, "these are not the backups you are looking for\n".repeat(100));
    const truncated = join(work, "truncated.db");
    cpSync(backup, truncated);
    truncateSync(truncated, Math.floor(readFileSync(backup).length / 2));
    const newer = join(work, "newer.db");
    cpSync(backup, newer);
    const n = new Database(newer);
    n.run(`PRAGMA user_version = ${HEAD + 1}`);
    n.close();
    const foreign = join(work, "foreign.db");
    const f = new Database(foreign, { create: true });
    f.run("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
    f.run("PRAGMA user_version = 3");
    f.close();

    const cases: [string, string, RegExp][] = [
      ["not SQLite", notSqlite, /is not a SQLite database/],
      ["truncated", truncated, /is damaged|cannot be opened|not a Slipway/],
      ["another master key", other.backup, /sealed under another master key/],
      ["a newer schema", newer, new RegExp(`schema version ${HEAD + 1}, newer than this slipway knows \\(${HEAD}\\)`)],
      ["not Slipway's", foreign, /not a Slipway one/],
      ["missing", join(work, "nowhere.db"), /does not exist/],
    ];
    const before = snapshot(dataDir);
    for (const [what, file, message] of cases) {
      const r = await runSlipway(bin, ["restore", "--from", file, "--data-dir", dataDir]);
      expect({ what, code: r.code }).toEqual({ what, code: 1 });
      expect(r.stderr).toMatch(message);
      expect(snapshot(dataDir)).toEqual(before);
    }
    // Usage: no --from.
    expect((await runSlipway(bin, ["restore", "--data-dir", dataDir])).code).toBe(2);
  }, 180_000);

  test("disaster recovery: no database in the data dir, the master key present", async () => {
    const { dataDir, backup } = await servedDataDir("d");
    for (const f of readdirSync(dataDir)) if (f.startsWith("slipway.db")) rmSync(join(dataDir, f));
    const r = await runSlipway(bin, ["restore", "--from", backup, "--data-dir", dataDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("there was no database to replace");
    expect(orgSlugs(join(dataDir, "slipway.db"))).toContain("before");

    // Without the master key it refuses: the secrets inside could not be opened.
    const keyless = join(work, "keyless");
    mkdirSync(keyless, { mode: 0o700 });
    const k = await runSlipway(bin, ["restore", "--from", backup, "--data-dir", keyless]);
    expect(k.code).toBe(1);
    expect(k.stderr).toMatch(/master key .* is missing/);
    expect(existsSync(join(keyless, "master.key"))).toBe(false);
  }, 180_000);

  test("an older backup is restored as it is and migrated by the next serve", async () => {
    // A version-1 data dir (test/fixtures/v1), its database moved out as the backup.
    const dataDir = join(work, "v1");
    cpSync(join(import.meta.dir, "..", "fixtures", "v1"), dataDir, { recursive: true });
    chmodSync(dataDir, 0o700);
    chmodSync(join(dataDir, "master.key"), 0o600);
    const backup = join(work, "v1.backup.db");
    renameSync(join(dataDir, "slipway.db"), backup);
    const r = await runSlipway(bin, ["restore", "--from", backup, "--data-dir", dataDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`the next 'slipway serve' migrates it from version 1 to ${HEAD}`);
    const s = await serve(bin, dataDir);
    try {
      expect((await s.get("/readyz")).status).toBe(200);
    } finally {
      expect(await s.stop()).toBe(0);
    }

    // The releases that served it are recorded; one that served before this binary is named at start.
    const dbFile = join(dataDir, "slipway.db");
    const db = new Database(dbFile);
    const served = db.query("SELECT version FROM server_versions").all() as { version: string }[];
    expect(served).toEqual([{ version: VERSION }]);
    db.run("DELETE FROM server_versions");
    db.run(
      "INSERT INTO server_versions VALUES ('0.0.1-earlier', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z')",
    );
    db.close();
    const upgraded = await serve(bin, dataDir);
    expect(await upgraded.stop()).toBe(0);
    expect(upgraded.logs()).toContain('"msg":"upgraded from 0.0.1-earlier"');
  }, 180_000);
});
