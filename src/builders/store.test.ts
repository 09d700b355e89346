/**
 * @module builders/store.test
 * The builders table's count for an organization's quota report: builders that are not absent,
 * of the projects named, and none for no project. A real SQLite database with the migrations.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { builderStoreFactory } from "./store.ts";

const dir = mkdtempSync(join(tmpdir(), "builder-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("runningCount: builders not absent among the projects named", () => {
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const at = new Date().toISOString();
  db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES ('org_1', 'one', 'one', ?)").run(at);
  for (const p of ["prj_a", "prj_b", "prj_c"])
    db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES (?, 'org_1', ?, ?)").run(p, p, at);
  const store = builderStoreFactory({ db });
  const states = {
    "prj_a|linux/amd64": "ready",
    "prj_a|linux/arm64": "absent",
    "prj_b|linux/amd64": "idle",
    "prj_c|linux/amd64": "starting",
  } as const;
  for (const [k, state] of Object.entries(states)) {
    const [projectId, platform] = k.split("|") as [string, string];
    store.setState(store.ensure({ projectId, platform }, "dockerd", at).id, state);
  }
  expect(store.runningCount(["prj_a", "prj_b"])).toBe(2);
  expect(store.runningCount(["prj_a"])).toBe(1);
  expect(store.runningCount(["prj_c", "prj_x"])).toBe(1);
  expect(store.runningCount([])).toBe(0);
  db.close();
});
