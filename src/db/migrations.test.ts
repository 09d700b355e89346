/**
 * @module db/migrations.test
 * The migration runner on real SQLite files: fresh installs, upgrades with a backup first,
 * failing migrations rolled back whole, foreign keys checked, newer databases refused.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  applyMigrations,
  backupDatabase,
  DatabaseTooNewError,
  embeddedMigrations,
  migrationStatus,
  MigrationFailedError,
  openDatabase,
  openForMigration,
  parseMigrationFiles,
  schemaVersion,
  type Migration,
} from "./index.ts";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "slipway-db-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const tables = (db: Database) =>
  (db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map(
    (r) => r.name,
  );

const m1: Migration = {
  version: 1,
  name: "one",
  sql: "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT) STRICT; INSERT INTO a (v) VALUES ('kept');",
};
const m2: Migration = { version: 2, name: "two", sql: "CREATE TABLE b (id INTEGER PRIMARY KEY) STRICT;" };

describe("applyMigrations", () => {
  test("the embedded migrations bring a fresh database to head with the pragmas set", () => {
    const db = openDatabase(join(dir, "x.db"));
    const st = applyMigrations(db);
    expect(st.current).toBe(embeddedMigrations.length);
    expect(st.pending).toEqual([]);
    expect(tables(db)).toEqual(
      expect.arrayContaining([
        "appliance",
        "certificate_authorities",
        "users",
        "organizations",
        "api_tokens",
        "certificate_issuances",
      ]),
    );
    expect((db.query("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode).toBe("wal");
    expect((db.query("PRAGMA foreign_keys").get() as { foreign_keys: number }).foreign_keys).toBe(1);
    expect((db.query("PRAGMA synchronous").get() as { synchronous: number }).synchronous).toBe(1); // NORMAL
    db.close();
  });

  test("beforeUpgrade runs only for a database that already has a schema", () => {
    const db = openDatabase(join(dir, "x.db"));
    const calls: number[] = [];
    applyMigrations(db, { migrations: [m1], beforeUpgrade: (s) => calls.push(s.current) });
    expect(calls).toEqual([]);
    applyMigrations(db, { migrations: [m1, m2], beforeUpgrade: (s) => calls.push(s.current) });
    expect(calls).toEqual([1]);
    applyMigrations(db, { migrations: [m1, m2], beforeUpgrade: (s) => calls.push(s.current) });
    expect(calls).toEqual([1]); // nothing pending, no backup
    db.close();
  });

  test("a failing migration is rolled back whole and names itself; earlier ones stay", () => {
    const file = join(dir, "x.db");
    const db = openDatabase(file);
    applyMigrations(db, { migrations: [m1] });
    const bad: Migration = {
      version: 3,
      name: "bad",
      sql: "CREATE TABLE c (id INTEGER); INSERT INTO a (v) VALUES ('half'); SELECT * FROM no_such_table;",
    };
    expect(() => applyMigrations(db, { migrations: [m1, m2, bad] })).toThrow(MigrationFailedError);
    try {
      applyMigrations(db, { migrations: [m1, m2, bad] });
    } catch (e) {
      expect((e as Error).message).toContain(
        "migration 0003_bad failed and was rolled back (database left at version 2)",
      );
    }
    expect(schemaVersion(db)).toBe(2);
    expect(tables(db)).toEqual(["a", "b"]);
    expect(db.query("SELECT v FROM a").all()).toEqual([{ v: "kept" }]);
    expect((db.query("PRAGMA foreign_keys").get() as { foreign_keys: number }).foreign_keys).toBe(1);
    db.close();
  });

  test("a migration that leaves foreign key violations is rolled back", () => {
    const db = openDatabase(join(dir, "x.db"));
    applyMigrations(db, {
      migrations: [
        {
          version: 1,
          name: "parent",
          sql: "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p(id));",
        },
      ],
    });
    const orphan: Migration = { version: 2, name: "orphan", sql: "INSERT INTO c (p) VALUES (42);" };
    expect(() => applyMigrations(db, { migrations: [{ version: 1, name: "parent", sql: "" }, orphan] })).toThrow(
      "foreign key violation",
    );
    expect(schemaVersion(db)).toBe(1);
    expect(db.query("SELECT count(*) AS n FROM c").get()).toEqual({ n: 0 });
    db.close();
  });

  test("a database newer than the migrations is refused by status and by openForMigration", () => {
    const file = join(dir, "x.db");
    const db = openDatabase(file);
    db.run("PRAGMA user_version = 7");
    db.close();
    expect(() => openForMigration(file, {}, [m1, m2])).toThrow(DatabaseTooNewError);
    const ro = openDatabase(file, { readonly: true });
    expect(() => migrationStatus(ro, [m1, m2])).toThrow(
      "the database is at schema version 7, newer than this slipway knows (2)",
    );
    ro.close();
  });
});

describe("parseMigrationFiles", () => {
  test("orders by number and rejects gaps and bad names", () => {
    expect(
      parseMigrationFiles([
        { file: "0002_b.sql", sql: "" },
        { file: "0001_a.sql", sql: "" },
      ]).map((m) => m.name),
    ).toEqual(["a", "b"]);
    expect(() =>
      parseMigrationFiles([
        { file: "0001_a.sql", sql: "" },
        { file: "0003_c.sql", sql: "" },
      ]),
    ).toThrow("numbered 1, 2, 3");
    expect(() => parseMigrationFiles([{ file: "1_a.sql", sql: "" }])).toThrow("NNNN_name.sql");
  });
});

describe("backupDatabase", () => {
  test("makes a consistent copy while another process keeps writing", async () => {
    const file = join(dir, "live.db");
    const stop = join(dir, "live.stop");
    const db = openDatabase(file);
    db.run("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)");
    const rows = () => (db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n;
    /** Polls until cond holds; a generous deadline, since the writer is a busy machine's child. */
    const until = async (what: string, cond: () => boolean) => {
      for (const deadline = Date.now() + 60_000; !cond(); await Bun.sleep(10))
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    };
    // A second process writes rows in transactions of 10 until told to stop, so it is writing
    // during every copy however long its start or the copies take.
    const writer = Bun.spawn(
      [
        process.execPath,
        "-e",
        `import { Database } from "bun:sqlite";
         import { existsSync } from "node:fs";
         const db = new Database(${JSON.stringify(file)});
         db.run("PRAGMA busy_timeout = 5000");
         const ins = db.prepare("INSERT INTO t (payload) VALUES (?)");
         const tx = db.transaction(() => { for (let i = 0; i < 10; i++) ins.run("x".repeat(500)); });
         while (!existsSync(${JSON.stringify(stop)})) tx();
         db.close();`,
      ],
      { stdout: "ignore", stderr: "pipe" },
    );
    const counts: number[] = [];
    try {
      await until("the writer's first rows", () => rows() > 0);
      for (let i = 0; i < 5; i++) {
        const out = join(dir, `copy-${i}.db`);
        backupDatabase(db, out);
        const copy = openDatabase(out, { readonly: true });
        expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
        counts.push((copy.query("SELECT count(*) AS n FROM t").get() as { n: number }).n);
        copy.close();
        // The writer wrote after this copy: the next one is taken mid-write too.
        await until("the writer to write more", () => rows() > counts[i]!);
      }
    } finally {
      writeFileSync(stop, "");
    }
    expect(await writer.exited).toBe(0);
    for (const n of counts) {
      expect(n).toBeGreaterThan(0);
      expect(n % 10).toBe(0); // whole transactions only
    }
    // Each copy saw more than the one before: the writer was writing all along.
    for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThan(counts[i - 1]!);
    expect(rows()).toBeGreaterThan(counts[counts.length - 1]!);
    expect(existsSync(join(dir, `.copy-0.db.${process.pid}.tmp`))).toBe(false);
    db.close();
  });
});
