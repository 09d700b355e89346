/**
 * @module appliance/served-versions.test
 * server_versions on a real migrated database: a fresh start names no previous release, a
 * restart neither; an upgrade names the release before it, once; going back to an older release
 * names the newer one without adding a row.
 */
import { expect, test } from "bun:test";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { recordServedVersion, servedVersions } from "./served-versions.ts";

test("records each release once, and what served before it", () => {
  const db = openDatabase(":memory:");
  applyMigrations(db);
  const at = (m: number) => new Date(Date.UTC(2030, 0, 1, 0, m));
  expect(recordServedVersion(db, "1.0.0", at(0))).toEqual({ previous: null, firstTime: true });
  expect(recordServedVersion(db, "1.0.0", at(1))).toEqual({ previous: null, firstTime: false });
  expect(recordServedVersion(db, "1.1.0", at(2))).toEqual({ previous: "1.0.0", firstTime: true });
  expect(recordServedVersion(db, "1.1.0", at(3))).toEqual({ previous: null, firstTime: false });
  expect(recordServedVersion(db, "1.0.0", at(4))).toEqual({ previous: "1.1.0", firstTime: false });
  expect(servedVersions(db)).toEqual([
    { version: "1.0.0", first_served_at: at(0).toISOString(), last_served_at: at(4).toISOString() },
    { version: "1.1.0", first_served_at: at(2).toISOString(), last_served_at: at(3).toISOString() },
  ]);
  db.close();
});
