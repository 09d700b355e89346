/**
 * @module cli/server/restore
 * `slipway restore --from BACKUP`: puts a `slipway backup` copy back as the data dir's database.
 * It takes the data dir's lock (so never while a serve runs on it), checks the copy before
 * touching anything (SQLite, intact, Slipway's schema at a version this binary knows, sealed
 * under this data dir's master key), keeps the current database aside, and swaps the copy in with
 * one rename, so a crash at any point leaves either the old or the new database in place. An
 * older schema is migrated by the next `serve`, with its usual backup first.
 */
import type { Database } from "bun:sqlite";
import {
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  openSync,
  readSync,
  rmSync,
  renameSync,
  statSync,
  chmodSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { lockDataDir } from "../../appliance/lock.ts";
import { DB_FILE } from "../../appliance/state.ts";
import { checkpointAndClose, embeddedMigrations, openDatabase, schemaVersion } from "../../db/index.ts";
import { ConfigError, PreconditionError, UsageError } from "../../errors.ts";
import { fsyncPath } from "../../fs/atomic.ts";
import { createSealer, locateMasterKey, loadOrCreateMasterKey } from "../../secrets/index.ts";
import { EXIT_OK, printJson, type Command } from "../command.ts";
import { SERVER_HELP, SERVER_OPTIONS, loadServerConfig } from "./options.ts";

const SQLITE_MAGIC = "SQLite format 3\0";

/** Thrown when the backup is not one this data dir can take; nothing has been changed. */
class RefusedBackupError extends PreconditionError {
  override name = "RefusedBackupError";
}

export const restoreCommand: Command = {
  name: "restore",
  summary: "put a backup back as the database (serve must be stopped); the current one is kept aside",
  usage: "slipway restore --from BACKUP [--config FILE] [--data-dir DIR]",
  options: { ...SERVER_OPTIONS, from: { type: "string" } },
  optionHelp: { ...SERVER_HELP, from: "the backup to restore (a file written by `slipway backup`)" },
  async run(ctx) {
    const from = ctx.values.from;
    if (typeof from !== "string" || from === "") throw new UsageError("restore needs --from BACKUP");
    const backup = resolve(from);
    const { dataDir, config } = loadServerConfig(ctx);
    if (!existsSync(dataDir)) throw new PreconditionError(`data dir ${dataDir} does not exist`);
    const key = locateMasterKey({
      dataDir,
      configuredFile: config.secrets.master_key_file,
      credentialsDirectory: ctx.env.CREDENTIALS_DIRECTORY,
    });
    if (!existsSync(key.path))
      throw new PreconditionError(
        `master key ${key.path} is missing: a backup's secrets are sealed under the master key, so restore master.key from your backup first`,
      );
    if (!existsSync(backup) || !statSync(backup).isFile())
      throw new RefusedBackupError(`${backup} does not exist or is not a file`);

    let lock: { release(): void };
    try {
      lock = lockDataDir(dataDir);
    } catch (e) {
      // Not a usage mistake: the data dir is busy (exit 1, not 2).
      if (e instanceof ConfigError) throw new PreconditionError(`cannot restore now: ${e.message}`);
      throw e;
    }
    try {
      const dbFile = join(dataDir, DB_FILE);
      const staged = join(dataDir, `.${DB_FILE}.restore-${process.pid}.tmp`);
      let checked: { version: number };
      try {
        // Checked as copied, in the data dir: what is checked is exactly what is installed.
        copyFileSync(backup, staged);
        chmodSync(staged, 0o600);
        checked = await checkBackup(staged, backup, {
          masterKey: loadOrCreateMasterKey({
            dataDir,
            configuredFile: config.secrets.master_key_file,
            credentialsDirectory: ctx.env.CREDENTIALS_DIRECTORY,
          }).bytes,
          keyPath: key.path,
        });
        // A read-only look may leave empty sidecars under the staged name; they must not linger.
        for (const side of ["-wal", "-shm"]) rmSync(staged + side, { force: true });
        fsyncPath(staged);
      } catch (e) {
        removeWithSidecars(staged);
        throw e;
      }

      const keptAt = existsSync(dbFile) ? keepAside(dbFile) : null;
      // No sidecar of the old database may meet the new one: SQLite would replay its WAL into it.
      for (const side of ["-wal", "-shm", "-journal"]) rmSync(dbFile + side, { force: true });
      renameSync(staged, dbFile);
      fsyncPath(dataDir);

      const head = embeddedMigrations.length;
      const result = {
        restored_from: backup,
        database: dbFile,
        schema_version: checked.version,
        head_version: head,
        kept_aside: keptAt,
        migrates_on_next_serve: checked.version < head,
      };
      if (ctx.client.json) printJson(ctx.io, result);
      else {
        ctx.io.out(`restored ${backup} (schema version ${checked.version}) as ${dbFile}`);
        ctx.io.out(
          keptAt
            ? `the database it replaced is kept at ${keptAt}`
            : "there was no database to replace (a fresh data dir)",
        );
        ctx.io.out(
          checked.version < head
            ? `the next 'slipway serve' migrates it from version ${checked.version} to ${head} (backing it up first)`
            : "it is at this slipway's schema version: 'slipway serve' uses it as is",
        );
      }
      return EXIT_OK;
    } finally {
      lock.release();
    }
  },
};

/** SQLite, intact, Slipway's schema at a version this binary knows, sealed under this master key. */
async function checkBackup(
  staged: string,
  shownAs: string,
  o: { masterKey: Uint8Array; keyPath: string },
): Promise<{ version: number }> {
  const head = Buffer.alloc(16);
  const fd = openSync(staged, "r");
  try {
    readSync(fd, head, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (head.toString("latin1") !== SQLITE_MAGIC)
    throw new RefusedBackupError(`${shownAs} is not a SQLite database (a file written by 'slipway backup' is)`);

  let db: Database;
  try {
    db = openDatabase(staged, { readonly: true });
  } catch (e) {
    throw new RefusedBackupError(`${shownAs} cannot be opened as a database: ${(e as Error).message}`);
  }
  try {
    let problems: string[];
    try {
      problems = (db.query("PRAGMA integrity_check").all() as { integrity_check: string }[]).map(
        (r) => r.integrity_check,
      );
    } catch (e) {
      problems = [(e as Error).message];
    }
    if (problems.length !== 1 || problems[0] !== "ok")
      throw new RefusedBackupError(
        `${shownAs} is damaged (SQLite's integrity check: ${problems.slice(0, 3).join("; ")}); it was not restored`,
      );

    const version = schemaVersion(db);
    const headVersion = embeddedMigrations.length;
    const hasCas = db
      .query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'certificate_authorities'")
      .get();
    if (version === 0 || !hasCas)
      throw new RefusedBackupError(`${shownAs} is a SQLite database but not a Slipway one (no Slipway schema in it)`);
    if (version > headVersion)
      throw new RefusedBackupError(
        `${shownAs} is at schema version ${version}, newer than this slipway knows (${headVersion}): restore it with the slipway release that wrote it, or a newer one`,
      );

    // One sealed value, opened with this data dir's key: a backup from another appliance (or
    // another master key) would otherwise be restored and then fail at every secret it holds.
    const ca = db.query("SELECT id, key_sealed FROM certificate_authorities ORDER BY created_at LIMIT 1").get() as {
      id: string;
      key_sealed: Uint8Array;
    } | null;
    if (ca) {
      const sealer = await createSealer(o.masterKey);
      try {
        await sealer.unseal(ca.key_sealed, `ca:${ca.id}`);
      } catch (e) {
        throw new RefusedBackupError(
          `${shownAs} was sealed under another master key than ${o.keyPath} (${(e as Error).message}); restore it beside the master key it was written with`,
        );
      }
    }
    return { version };
  } finally {
    db.close();
  }
}

/**
 * Keeps the current database as `slipway.db.before-restore-<UTC stamp>`, its WAL folded in first
 * so the kept file is whole on its own. A hard link, not a copy: the live name is then replaced by
 * one rename, never missing. A database too damaged to checkpoint is kept with its WAL beside it.
 */
function keepAside(dbFile: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "Z");
  const aside = `${dbFile}.before-restore-${stamp}`;
  try {
    checkpointAndClose(openDatabase(dbFile));
  } catch {
    if (existsSync(`${dbFile}-wal`)) copyFileSync(`${dbFile}-wal`, `${aside}-wal`);
  }
  linkSync(dbFile, aside);
  fsyncPath(join(dbFile, ".."));
  return aside;
}

function removeWithSidecars(file: string): void {
  for (const side of ["", "-wal", "-shm", "-journal"]) rmSync(file + side, { force: true });
}
