/**
 * @module db/migrations
 * Schema migrations tracked with PRAGMA user_version. Each migration runs in its own transaction
 * (so a failing one leaves the database exactly as the previous one left it), foreign keys are
 * checked before each commit, and an existing database is backed up before anything is applied.
 */
import type { Database } from "bun:sqlite";
import { PreconditionError, SlipwayError } from "../errors.ts";
import { embeddedMigrationFiles } from "./embed.macro.ts" with { type: "macro" };
import { existsSync } from "node:fs";
import { openDatabase, schemaVersion, type OpenOptions } from "./open.ts";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Parses `NNNN_name.sql` files into an ordered list; versions must be 1, 2, 3, ... */
export function parseMigrationFiles(files: { file: string; sql: string }[]): Migration[] {
  const list = files.map(({ file, sql }) => {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new Error(`migration file name ${file} is not NNNN_name.sql`);
    return { version: Number(m[1]), name: m[2]!, sql };
  });
  list.sort((a, b) => a.version - b.version);
  list.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migrations must be numbered 1, 2, 3, ...; found ${m.version} at position ${i + 1}`);
  });
  return list;
}

/** The migrations compiled into this build. */
export const embeddedMigrations: Migration[] = parseMigrationFiles(embeddedMigrationFiles());

export interface MigrationStatus {
  current: number;
  head: number;
  pending: Migration[];
}

export class DatabaseTooNewError extends PreconditionError {
  override name = "DatabaseTooNewError";
}

export class MigrationFailedError extends SlipwayError {
  override name = "MigrationFailedError";
}

export function migrationStatus(db: Database, migrations: Migration[] = embeddedMigrations): MigrationStatus {
  const current = schemaVersion(db);
  const head = migrations.length;
  if (current > head) {
    throw new DatabaseTooNewError(
      `the database is at schema version ${current}, newer than this slipway knows (${head}); ` +
        `run a slipway release at least as new as the one that last wrote it, or restore a backup`,
    );
  }
  return { current, head, pending: migrations.slice(current) };
}

export interface ApplyOptions {
  migrations?: Migration[];
  /** Called once before the first pending migration when the database already has a schema. */
  beforeUpgrade?: (status: MigrationStatus) => void;
  onApplied?: (m: Migration, ms: number) => void;
}

export function applyMigrations(db: Database, opts: ApplyOptions = {}): MigrationStatus {
  const migrations = opts.migrations ?? embeddedMigrations;
  const status = migrationStatus(db, migrations);
  if (status.pending.length === 0) return status;
  if (status.current > 0) opts.beforeUpgrade?.(status);

  // Table rebuilds need foreign keys off; the check inside each transaction keeps them honest.
  db.run("PRAGMA foreign_keys = OFF");
  try {
    for (const m of status.pending) {
      const started = performance.now();
      try {
        db.transaction(() => {
          db.run(m.sql);
          const broken = db.query("PRAGMA foreign_key_check").all();
          if (broken.length > 0) throw new Error(`leaves ${broken.length} foreign key violation(s)`);
          db.run(`PRAGMA user_version = ${m.version}`);
        })();
      } catch (e) {
        throw new MigrationFailedError(
          `migration ${String(m.version).padStart(4, "0")}_${m.name} failed and was rolled back (database left at version ${schemaVersion(db)}): ${(e as Error).message}`,
        );
      }
      opts.onApplied?.(m, performance.now() - started);
    }
  } finally {
    db.run("PRAGMA foreign_keys = ON");
  }
  return migrationStatus(db, migrations);
}

/**
 * Opens a database for migrating, refusing one newer than this binary before anything touches
 * the file (opening read-write would already rewrite its journal mode in the header).
 */
export function openForMigration(
  file: string,
  opts: OpenOptions = {},
  migrations: Migration[] = embeddedMigrations,
): Database {
  if (existsSync(file)) {
    const probe = openDatabase(file, { ...opts, readonly: true });
    try {
      migrationStatus(probe, migrations);
    } finally {
      probe.close();
    }
  }
  return openDatabase(file, opts);
}
