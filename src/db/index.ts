/**
 * @module db
 * SQLite through bun:sqlite: opening with the right pragmas, embedded migrations, online backups.
 */
export { openDatabase, checkpointAndClose, schemaVersion, isUniqueViolation } from "./open.ts";
export {
  applyMigrations,
  migrationStatus,
  openForMigration,
  embeddedMigrations,
  parseMigrationFiles,
  DatabaseTooNewError,
  MigrationFailedError,
  type Migration,
  type MigrationStatus,
} from "./migrations.ts";
export { startCheckpointer, type Checkpointer } from "./checkpointer.ts";
export { backupDatabase, preMigrationBackupPath } from "./backup.ts";
