/**
 * @module builders/store
 * The `builders` table, owned here: one row per (project, platform) with its life-cycle state, so a
 * restarted serve adopts what still runs. Every query of the table is in this file; other
 * capabilities (organization quotas) ask through its methods.
 */
import type { Database } from "bun:sqlite";
import { newId } from "../ids.ts";
import type { BuilderRuntime } from "../router/index.ts";
import type { BuilderRef, BuilderRow, BuilderState } from "./types.ts";

export type BuilderStore = ReturnType<typeof builderStoreFactory>;

export function builderStoreFactory({ db, now = () => new Date() }: { db: Database; now?: () => Date }) {
  const rows = (sql: string, ...params: (string | null)[]) => db.query(sql).all(...params) as BuilderRow[];

  return {
    get(r: BuilderRef): BuilderRow | null {
      return db
        .query("SELECT * FROM builders WHERE project_id = ? AND platform = ?")
        .get(r.projectId, r.platform) as BuilderRow | null;
    },

    byContainer(containerId: string): BuilderRow | null {
      return db.query("SELECT * FROM builders WHERE container_id = ?").get(containerId) as BuilderRow | null;
    },

    /** The builder's row, made (absent) the first time the (project, platform) asks for one. */
    ensure(r: BuilderRef, runtime: BuilderRuntime, at: string): BuilderRow {
      const b = this.get(r);
      if (b) return b;
      db.query(
        `INSERT INTO builders (id, project_id, platform, runtime, state, updated_at) VALUES (?, ?, ?, ?, 'absent', ?)`,
      ).run(newId("bldr"), r.projectId, r.platform, runtime, at);
      return this.get(r)!;
    },

    setState(id: string, state: BuilderState, extra: Partial<BuilderRow> = {}): void {
      const cols = Object.keys(extra);
      db.query(
        `UPDATE builders SET state = ?, updated_at = ?${cols.map((c) => `, ${c} = ?`).join("")} WHERE id = ?`,
      ).run(
        state,
        now().toISOString(),
        ...cols.map((c) => (extra as Record<string, string | number | null>)[c] ?? null),
        id,
      );
    },

    /** An idle builder becomes ready; a ready one is written again only once a second (a write per
     * build admission was a third of the admission's commits). `b` is its row as just read. */
    markUsed(b: Pick<BuilderRow, "id" | "state" | "last_used_at">): void {
      const t = now();
      if (b.state === "ready" && b.last_used_at && t.getTime() - Date.parse(b.last_used_at) < 1000) return;
      db.query(
        "UPDATE builders SET state = 'ready', last_used_at = ?, updated_at = ? WHERE id = ? AND state IN ('ready', 'idle')",
      ).run(t.toISOString(), t.toISOString(), b.id);
    },

    /** Every builder of the project, one per platform. */
    list(projectId: string): BuilderRow[] {
      return rows("SELECT * FROM builders WHERE project_id = ? ORDER BY platform", projectId);
    },

    /** Every builder row, absent ones too, by project and platform (the administrator's list). */
    all(): BuilderRow[] {
      return rows("SELECT * FROM builders ORDER BY project_id, platform");
    },

    /** Builders that are not absent: each holds a slot, and a running serve has (or had) its container. */
    active(): BuilderRow[] {
      return rows("SELECT * FROM builders WHERE state != 'absent'");
    },

    /** Builders that are not absent (of one project, or all), by project and platform. */
    activeOf(projectId?: string): BuilderRow[] {
      return rows(
        "SELECT * FROM builders WHERE state != 'absent' AND (?1 IS NULL OR project_id = ?1) ORDER BY project_id, platform",
        projectId ?? null,
      );
    },

    /** Whether any builder of the project is not absent. */
    projectBusy(projectId: string): boolean {
      return (
        db.query("SELECT 1 FROM builders WHERE project_id = ? AND state != 'absent' LIMIT 1").get(projectId) !== null
      );
    },

    /** Builders that run and are started: ready or idle. */
    up(): BuilderRow[] {
      return rows("SELECT * FROM builders WHERE state IN ('ready', 'idle')");
    },

    /** Idle builders, least recently used first. */
    idle(): BuilderRow[] {
      return rows("SELECT * FROM builders WHERE state = 'idle' ORDER BY last_used_at");
    },

    /** Builders that run now, starting ones included. */
    running(): BuilderRef[] {
      return (
        db.query("SELECT project_id, platform FROM builders WHERE state IN ('starting', 'ready', 'idle')").all() as {
          project_id: string;
          platform: string;
        }[]
      ).map((r) => ({ projectId: r.project_id, platform: r.platform }));
    },

    /** Builders of these projects that are not absent (an organization's, for its quota report). */
    runningCount(projectIds: readonly string[]): number {
      if (projectIds.length === 0) return 0;
      return (
        db
          .query(
            `SELECT count(*) AS n FROM builders WHERE state != 'absent' AND project_id IN (${projectIds.map(() => "?").join(",")})`,
          )
          .get(...projectIds) as { n: number }
      ).n;
    },
  };
}
