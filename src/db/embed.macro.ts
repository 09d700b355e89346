/**
 * @module db/embed.macro
 * Runs at bundle time (imported `with { type: "macro" }`): reads migrations/NNNN_name.sql so the
 * compiled binary carries them as string constants and needs no files beside it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export function embeddedMigrationFiles(): { file: string; sql: string }[] {
  const dir = join(import.meta.dir, "..", "..", "migrations");
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => ({ file, sql: readFileSync(join(dir, file), "utf8") }));
}
