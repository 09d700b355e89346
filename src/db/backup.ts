/**
 * @module db/backup
 * Consistent online copies of the database: VACUUM INTO a temporary file beside the target,
 * fsync it, rename it into place, fsync the directory. Works while `serve` is writing (WAL
 * readers see one snapshot), and a crash never leaves a half-written file under the final name.
 */
import type { Database } from "bun:sqlite";
import { renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fsyncPath } from "../fs/atomic.ts";

export function backupDatabase(db: Database, target: string): void {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(tmp, { force: true });
  try {
    db.query("VACUUM INTO ?").run(tmp);
    fsyncPath(tmp);
    renameSync(tmp, target);
    fsyncPath(dirname(target));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Name for the automatic copy taken before migrating from `fromVersion`. */
export function preMigrationBackupPath(dbFile: string, fromVersion: number, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "Z");
  return `${dbFile}.v${fromVersion}-${stamp}.bak`;
}
