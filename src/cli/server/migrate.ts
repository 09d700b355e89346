/**
 * @module cli/server/migrate
 * `slipway migrate [--dry-run]`: bring the database schema up to this binary's, with a backup
 * first; or just say what would be applied.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DB_FILE } from "../../appliance/state.ts";
import {
  applyMigrations,
  backupDatabase,
  checkpointAndClose,
  migrationStatus,
  openDatabase,
  openForMigration,
  preMigrationBackupPath,
} from "../../db/index.ts";
import { PreconditionError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command } from "../command.ts";
import { SERVER_HELP, SERVER_OPTIONS, loadServerConfig } from "./options.ts";

export const migrateCommand: Command = {
  name: "migrate",
  summary: "apply pending database migrations (a backup is taken first)",
  usage: "slipway migrate [--dry-run] [--config FILE] [--data-dir DIR]",
  options: { ...SERVER_OPTIONS, "dry-run": { type: "boolean" } },
  optionHelp: { ...SERVER_HELP, "dry-run": "list pending migrations without applying them" },
  async run(ctx) {
    const { dataDir, config } = loadServerConfig(ctx);
    const dbFile = join(dataDir, DB_FILE);
    if (!existsSync(dbFile))
      throw new PreconditionError(`no database at ${dbFile}; 'slipway serve' creates it on first start`);
    const dryRun = ctx.values["dry-run"] === true;
    // A dry run opens read-only: not even the journal mode in the file header may change.
    const opts = { busyTimeoutMs: config.database.busy_timeout_ms, readonly: dryRun };
    const db = dryRun ? openDatabase(dbFile, opts) : openForMigration(dbFile, opts);
    try {
      const before = migrationStatus(db);
      const pending = before.pending.map((m) => ({ version: m.version, name: m.name }));
      if (dryRun || pending.length === 0) {
        if (ctx.client.json) printJson(ctx.io, { current: before.current, head: before.head, pending, applied: [] });
        else if (pending.length === 0)
          ctx.io.out(`database is at version ${before.current}, the latest; nothing to do`);
        else {
          ctx.io.out(`database is at version ${before.current}; would apply ${pending.length} migration(s):`);
          for (const m of pending) ctx.io.out(`  ${String(m.version).padStart(4, "0")}_${m.name}`);
        }
        return EXIT_OK;
      }
      let backup: string | null = null;
      const after = applyMigrations(db, {
        beforeUpgrade: (s) => {
          backup = preMigrationBackupPath(dbFile, s.current);
          backupDatabase(db, backup);
        },
      });
      if (ctx.client.json)
        printJson(ctx.io, { current: after.current, head: after.head, pending: [], applied: pending, backup });
      else {
        if (backup) ctx.io.out(`backed up the database to ${backup}`);
        for (const m of pending) ctx.io.out(`applied ${String(m.version).padStart(4, "0")}_${m.name}`);
        ctx.io.out(`database is at version ${after.current}`);
      }
      return EXIT_OK;
    } finally {
      if (dryRun) db.close();
      else checkpointAndClose(db);
    }
  },
};
