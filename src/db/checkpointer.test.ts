import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
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
    expect((db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(
      16_000,
    );
    const insert = db.query("INSERT INTO t VALUES (?)");
    for (let i = 0; i < 1000; i++) insert.run(new Uint8Array(4096));
    // 1,000 commits of ~3 frames each: far past the 1,000 at which SQLite would have checkpointed.
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(1000 * 4096);
    const r = await ckpt.checkpointNow();
    expect(r.log).toBeGreaterThan(1000);
    expect(r.checkpointed).toBe(r.log);
    await ckpt.stop();
    expect((db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number }).wal_autocheckpoint).toBe(
      1000,
    );
    expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1000);
    db.close();
  });

  test("a writer that never pauses long: the WAL keeps starting over (the server's connection checkpoints past maxWalFrames)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-ckpt-"));
    dirs.push(dir);
    const file = join(dir, "t.db");
    const db = openDatabase(file);
    db.run("CREATE TABLE t (v BLOB)");
    const ckpt = await startCheckpointer(db, file, { intervalMs: 10, maxWalFrames: 300 });
    const insert = db.query("INSERT INTO t VALUES (?)");
    // The WAL header's checkpoint sequence number goes up by one each time the WAL starts over
    // from its beginning, which SQLite does only after a checkpoint that left nothing behind:
    // counting those is the bound itself, whatever the size the file reached in between (that
    // depends on how long the busy machine kept the worker's pass holding the checkpoint lock).
    const sequence = () => {
      const fd = openSync(`${file}-wal`, "r");
      try {
        const header = Buffer.alloc(16);
        readSync(fd, header, 0, 16, 0);
        return header.readUInt32BE(12);
      } finally {
        closeSync(fd);
      }
    };
    let restarts = 0;
    let seen = sequence();
    let largest = 0;
    // 6,000 commits (3 frames each) in bursts of 100 with only a yield between: the worker's
    // passes always overlap writes, and alone they never finish one, so the WAL never starts over
    // and reaches ~18,000 frames (75 MB).
    for (let burst = 0; burst < 60; burst++) {
      for (let i = 0; i < 100; i++) insert.run(new Uint8Array(3000));
      const now = sequence();
      restarts += (now - seen) >>> 0;
      seen = now;
      largest = Math.max(largest, statSync(`${file}-wal`).size);
      await Bun.sleep(0);
    }
    await ckpt.stop();
    console.log(`  WAL started over ${restarts} times in 6,000 commits; largest ${(largest / 1e6).toFixed(1)} MB`);
    expect(restarts).toBeGreaterThanOrEqual(5);
    // Never anywhere near what the commits make when nothing checkpoints (6,000 × 3 frames).
    expect(largest).toBeLessThan((6000 * 3 * 4096) / 2);
    expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(6000);
    db.close();
  });
});
