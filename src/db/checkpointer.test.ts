import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "./open.ts";
import { startCheckpointer } from "./checkpointer.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("checkpointer", () => {
  test("the server's connection stops checkpointing itself; the worker folds the WAL back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-ckpt-"));
    dirs.push(dir);
    const file = join(dir, "t.db");
    const db = openDatabase(file);
    db.run("CREATE TABLE t (v BLOB)");
    const ckpt = await startCheckpointer(db, file, { intervalMs: 60_000 });
    expect((db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(0);
    const insert = db.query("INSERT INTO t VALUES (?)");
    for (let i = 0; i < 1500; i++) insert.run(new Uint8Array(4096));
    // 1,500 commits of a page each: far past the 1,000 pages at which SQLite would have checkpointed.
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(1000 * 4096);
    const r = await ckpt.checkpointNow();
    expect(r.log).toBeGreaterThan(1000);
    expect(r.checkpointed).toBe(r.log);
    await ckpt.stop();
    expect((db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(1000);
    expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1500);
    db.close();
  });
});
