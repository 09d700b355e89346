/**
 * @module cli/server/offline
 * What the offline operator commands (admin, pki) share: the server's data dir, its database
 * at the schema this binary expects, and — for commands that touch sealed secrets — the master
 * key, which is never generated here.
 */
import type { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DB_FILE } from "../../appliance/state.ts";
import type { LoadedConfig } from "../../config/index.ts";
import { migrationStatus, openDatabase } from "../../db/index.ts";
import { PreconditionError } from "../../errors.ts";
import { createSealer, loadOrCreateMasterKey, locateMasterKey, type Sealer } from "../../secrets/index.ts";
import { loadServerConfig } from "./options.ts";
import type { CommandContext } from "../command.ts";

export interface DataDir {
  db: Database;
  dataDir: string;
  loaded: LoadedConfig;
}

/** The data dir's database, refusing a missing one or one at another schema version. */
export function openDataDir(ctx: CommandContext): DataDir {
  const loaded = loadServerConfig(ctx);
  const dbFile = join(loaded.dataDir, DB_FILE);
  if (!existsSync(dbFile))
    throw new PreconditionError(
      `no database at ${dbFile}; 'slipway serve' creates it on first start (or pass --data-dir)`,
    );
  const db = openDatabase(dbFile, { busyTimeoutMs: loaded.config.database.busy_timeout_ms });
  try {
    const status = migrationStatus(db);
    if (status.pending.length > 0) {
      throw new PreconditionError(
        `the database at ${dbFile} is at schema version ${status.current}, this slipway expects ${status.head}; run 'slipway migrate' first`,
      );
    }
  } catch (e) {
    db.close();
    throw e;
  }
  return { db, dataDir: loaded.dataDir, loaded };
}

/** The sealer for the data dir's existing master key. */
export async function existingSealer(d: DataDir, env: Record<string, string | undefined>): Promise<Sealer> {
  const where = {
    dataDir: d.dataDir,
    configuredFile: d.loaded.config.secrets.master_key_file,
    credentialsDirectory: env.CREDENTIALS_DIRECTORY,
  };
  const { path } = locateMasterKey(where);
  if (!existsSync(path)) throw new PreconditionError(`master key ${path} is missing; restore it from your backup`);
  return createSealer(loadOrCreateMasterKey(where).bytes);
}
