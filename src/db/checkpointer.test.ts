import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "./open.ts";
import { startCheckpointer } from "./checkpointer.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("checkpointer", () => {
  test("the server's connection checkpoints only far later than SQLite would; the worker folds the WAL back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-ckpt-"));
    dirs.push(dir);
    const file = join(dir, "t.db");
    const db = openDatabase(file);
    db.run("CREATE TABLE t (v BLOB)");
    const ckpt = await startCheckpointer(db, file, { intervalMs: 60_000 });
    expect((db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(16_000);
    const insert = db.query("INSERT INTO t VALUES (?)");
    for (let i = 0; i < 1000; i++) insert.run(new Uint8Array(4096));
    // 1,000 commits of ~3 frames each: far past the 1,000 at which SQLite would have checkpointed.
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(1000 * 4096);
    const r = await ckpt.checkpointNow();
    expect(r.log).toBeGreaterThan(1000);
    expect(r.checkpointed).toBe(r.log);
    await ckpt.stop();
    expect((db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(1000);
    expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1000);
    db.close();
  });

  test("a writer that never pauses long: the WAL stays bounded (the server's connection checkpoints past maxWalFrames)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-ckpt-"));
    dirs.push(dir);
    const file = join(dir, "t.db");
    const db = openDatabase(file);
    db.run("CREATE TABLE t (v BLOB)");
    const ckpt = await startCheckpointer(db, file, { intervalMs: 10, maxWalFrames: 300 });
    const insert = db.query("INSERT INTO t VALUES (?)");
    let largest = 0;
    // 6,000 commits (3 frames each) in bursts of 100 with only a yield between: the worker's
    // passes always overlap writes, and alone they let the WAL reach ~18,000 frames (75 MB).
    for (let burst = 0; burst < 60; burst++) {
      for (let i = 0; i < 100; i++) insert.run(new Uint8Array(3000));
      largest = Math.max(largest, statSync(`${file}-wal`).size);
      await Bun.sleep(0);
    }
    await ckpt.stop();
    expect(largest).toBeLessThan(2000 * 4096);
    expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(6000);
    db.close();
  });
});
