/**
 * @module cli/server/backup
 * `slipway backup --out FILE`: a consistent copy of the database, safe while `serve` runs.
 * The master key is deliberately not in it: a leaked backup then reveals no sealed secret.
 */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { DB_FILE } from "../../appliance/state.ts";
import { backupDatabase, openDatabase, schemaVersion } from "../../db/index.ts";
import { PreconditionError, UsageError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command } from "../command.ts";
import { SERVER_HELP, SERVER_OPTIONS, loadServerConfig } from "./options.ts";

export const backupCommand: Command = {
  name: "backup",
  summary: "write a consistent copy of the database (works while serve runs)",
  usage: "slipway backup --out FILE [--force] [--config FILE] [--data-dir DIR]",
  options: { ...SERVER_OPTIONS, out: { type: "string", short: "o" }, force: { type: "boolean" } },
  optionHelp: { ...SERVER_HELP, out: "where to write the copy", force: "replace FILE if it exists" },
  async run(ctx) {
    const out = ctx.values.out;
    if (typeof out !== "string" || out === "") throw new UsageError("backup needs --out FILE");
    const target = resolve(out);
    if (existsSync(target) && !ctx.values.force)
      throw new UsageError(`${target} already exists; choose another name or pass --force`);
    const { dataDir, config } = loadServerConfig(ctx);
    const dbFile = join(dataDir, DB_FILE);
    if (!existsSync(dbFile)) throw new PreconditionError(`no database at ${dbFile}; nothing to back up`);
    const db = openDatabase(dbFile, { busyTimeoutMs: config.database.busy_timeout_ms, readonly: true });
    try {
      backupDatabase(db, target);
      const result = { file: target, bytes: statSync(target).size, schema_version: schemaVersion(db) };
      if (ctx.client.json) printJson(ctx.io, result);
      else {
        ctx.io.out(`wrote ${result.file} (${result.bytes} bytes, schema version ${result.schema_version})`);
        ctx.io.out(
          `keep ${join(dataDir, "master.key")} safe separately: the secrets in this backup are sealed under it`,
        );
      }
      return EXIT_OK;
    } finally {
      db.close();
    }
  },
};
