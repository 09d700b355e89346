/**
 * @module appliance/state
 * Opening the appliance's state in the data dir: the database (migrated, with a backup first),
 * the master key, the CA hierarchy, the first administrator, and `ca.pem`. Every step is
 * idempotent, so a start that dies halfway is finished by the next one.
 */
import type { Database } from "bun:sqlite";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { auditServiceFactory } from "../auth/audit.ts";
import {
  applyMigrations,
  backupDatabase,
  openForMigration,
  preMigrationBackupPath,
  schemaVersion,
} from "../db/index.ts";
import { PreconditionError } from "../errors.ts";
import { bootstrapAdministrator, type BootstrapResult } from "../orgs/bootstrap.ts";
import { writeFileAtomic } from "../fs/atomic.ts";
import { ensureApplianceId } from "./identity-row.ts";
import type { Logger } from "../log/logger.ts";
import { pkiServiceFactory, type Pki } from "../pki/index.ts";
import { createSealer, loadOrCreateMasterKey, locateMasterKey, type Sealer } from "../secrets/index.ts";

export const DB_FILE = "slipway.db";
/** The appliance id as plain text, for tools without SQLite (the .deb's purge). */
export const APPLIANCE_ID_FILE = "appliance-id";
export const CA_FILE = "ca.pem";

export interface StateOptions {
  dataDir: string;
  /** Cap on per-build client certificate lifetimes (pki.client_cert_max_lifetime_seconds). */
  maxClientCertLifetimeMs?: number;
  busyTimeoutMs: number;
  masterKeyFile?: string;
  credentialsDirectory?: string;
  log: Logger;
}

export interface ApplianceState {
  db: Database;
  sealer: Sealer;
  pki: Pki;
  applianceId: string;
  bootstrap: BootstrapResult;
  caFile: string;
  dbFile: string;
}

export async function openApplianceState(o: StateOptions): Promise<ApplianceState> {
  const dbFile = join(o.dataDir, DB_FILE);
  const dbExisted = existsSync(dbFile);
  const db = openForMigration(dbFile, { busyTimeoutMs: o.busyTimeoutMs });
  try {
    const initialized = dbExisted && schemaVersion(db) > 0;
    const located = locateMasterKey({
      dataDir: o.dataDir,
      configuredFile: o.masterKeyFile,
      credentialsDirectory: o.credentialsDirectory,
    });
    if (initialized && !existsSync(located.path)) {
      // A fresh key would make every sealed secret in the database unreadable.
      throw new PreconditionError(
        `master key ${located.path} is missing but ${dbFile} already holds secrets sealed under one; restore master.key from your backup`,
      );
    }
    const key = loadOrCreateMasterKey({
      dataDir: o.dataDir,
      configuredFile: o.masterKeyFile,
      credentialsDirectory: o.credentialsDirectory,
    });
    if (key.created) o.log.info("generated master key", { path: key.path });
    const sealer = await createSealer(key.bytes);

    applyMigrations(db, {
      beforeUpgrade: (s) => {
        const backup = preMigrationBackupPath(dbFile, s.current);
        backupDatabase(db, backup);
        o.log.info("backed up database before migrating", { from_version: s.current, to_version: s.head, backup });
      },
      onApplied: (m, ms) => o.log.info("applied migration", { version: m.version, name: m.name, ms: Math.round(ms) }),
    });

    const applianceId = ensureApplianceId(db);
    // The id in a plain file too: the package's purge (a shell script, after the binary is gone)
    // removes only this appliance's containers, networks, chains and sets, never another's.
    const idFile = join(o.dataDir, APPLIANCE_ID_FILE);
    if (!existsSync(idFile) || readFileSync(idFile, "utf8") !== `${applianceId}\n`)
      writeFileAtomic(idFile, `${applianceId}\n`, 0o644);

    const pki = pkiServiceFactory({
      db,
      sealer,
      applianceId,
      audit: auditServiceFactory({ db }),
      maxClientCertLifetimeMs: o.maxClientCertLifetimeMs,
    });
    for (const ca of await pki.ensureHierarchy(["server", "build-client"])) {
      o.log.info("created certificate authority", { purpose: ca.purpose, serial: ca.serial, not_after: ca.not_after });
    }
    const caFile = join(o.dataDir, CA_FILE);
    // Every unexpired root: after a root rotation, clients holding either chain still verify.
    const rootPem = pki.trustedRootsPem();
    if (!existsSync(caFile) || readFileSync(caFile, "utf8") !== rootPem) writeFileAtomic(caFile, rootPem, 0o644);

    const bootstrap = bootstrapAdministrator(db, o.dataDir);
    return { db, sealer, pki, applianceId, bootstrap, caFile, dbFile };
  } catch (e) {
    db.close();
    throw e;
  }
}
