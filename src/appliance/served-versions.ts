/**
 * @module appliance/served-versions
 * The `server_versions` table's owner: every slipway release that has served this database, with
 * when it first and last started. Written at each serve start, after the migrations; an upgrade
 * test (and an operator) can tell which releases a data dir has been through.
 */
import type { Database } from "bun:sqlite";

export interface ServedVersion {
  version: string;
  first_served_at: string;
  last_served_at: string;
}

/**
 * Records that `version` serves now. `previous`: the release that started before this one, when
 * it is another (an upgrade or a downgrade); null on a fresh database or a plain restart.
 */
export function recordServedVersion(
  db: Database,
  version: string,
  now = new Date(),
): { previous: string | null; firstTime: boolean } {
  return db.transaction(() => {
    const last = db
      .query("SELECT version FROM server_versions ORDER BY last_served_at DESC, rowid DESC LIMIT 1")
      .get() as {
      version: string;
    } | null;
    const known = db.query("SELECT 1 FROM server_versions WHERE version = ?").get(version) !== null;
    const at = now.toISOString();
    db.query(
      `INSERT INTO server_versions (version, first_served_at, last_served_at) VALUES (?, ?, ?)
       ON CONFLICT (version) DO UPDATE SET last_served_at = excluded.last_served_at`,
    ).run(version, at, at);
    return { previous: last && last.version !== version ? last.version : null, firstTime: !known };
  })();
}

/** Every release that has served this database, the first one first. */
export function servedVersions(db: Database): ServedVersion[] {
  return db
    .query("SELECT version, first_served_at, last_served_at FROM server_versions ORDER BY first_served_at, rowid")
    .all() as ServedVersion[];
}
