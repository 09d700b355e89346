/**
 * @module db/open
 * Opens the SQLite database with the pragmas every connection needs: WAL (readers never block the
 * writer, and `backup` can run beside `serve`), synchronous=NORMAL (durable at each checkpoint,
 * safe in WAL), foreign keys enforced, and a busy timeout instead of immediate SQLITE_BUSY.
 */
import { Database } from "bun:sqlite";

export interface OpenOptions {
  busyTimeoutMs?: number;
  readonly?: boolean;
}

export function openDatabase(file: string, opts: OpenOptions = {}): Database {
  const db = opts.readonly
    ? new Database(file, { readonly: true, strict: true })
    : new Database(file, { create: true, strict: true });
  db.run(`PRAGMA busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 5000)}`);
  if (!opts.readonly) {
    db.run("PRAGMA journal_mode = WAL");
    db.run("PRAGMA synchronous = NORMAL");
  }
  db.run("PRAGMA foreign_keys = ON");
  return db;
}

/** Folds the WAL back into the main file and closes: what a clean shutdown leaves behind. */
export function checkpointAndClose(db: Database): void {
  try {
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

export function schemaVersion(db: Database): number {
  return (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
}

/** A write refused by a UNIQUE constraint: services turn it into a ConflictError. */
export function isUniqueViolation(e: unknown): boolean {
  return e instanceof Error && /UNIQUE constraint failed/.test(e.message);
}
