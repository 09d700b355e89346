/**
 * @module builds/logs
 * The build_logs table's owner: a build's log chunks as its client and the build endpoint
 * reported them (capped per build by builds/service), read back in order, and pruned some days
 * after their build ended (retention asks). The build and its steps stay.
 */
import type { Database } from "bun:sqlite";

export type BuildLogs = ReturnType<typeof buildLogsFactory>;

export function buildLogsFactory({ db }: { db: Database }) {
  const insert = db.query("INSERT INTO build_logs (build_id, vertex, stream, at, data) VALUES (?, ?, ?, ?, ?)");
  const ofBuild = db.query("SELECT data FROM build_logs WHERE build_id = ? ORDER BY id");
  const chunksAfter = db.query(
    "SELECT id, vertex, stream, at, data FROM build_logs WHERE build_id = ? AND id >= ? ORDER BY id",
  );
  const prune = db.query(
    `DELETE FROM build_logs WHERE id IN (
       SELECT l.id FROM builds b JOIN build_logs l ON l.build_id = b.id
       WHERE b.finished_at < ?1 AND b.status NOT IN ('created', 'running') LIMIT ?2)`,
  );
  return {
    /** Stores a chunk; returns its id (chunks of one build are ordered by it). */
    append(buildId: string, chunk: { vertex: string; stream: number; at: Date; data: Uint8Array }): number {
      return Number(
        insert.run(buildId, chunk.vertex, chunk.stream, chunk.at.toISOString(), chunk.data).lastInsertRowid,
      );
    },

    /** The build's chunks from chunk id `fromId` on, in order (a follower's replay). */
    chunksFrom(
      buildId: string,
      fromId: number,
    ): { id: number; vertex: string; stream: number; at: string; data: Uint8Array }[] {
      return chunksAfter.all(buildId, fromId) as {
        id: number;
        vertex: string;
        stream: number;
        at: string;
        data: Uint8Array;
      }[];
    },

    /** The build's log, in the order it came. */
    text(buildId: string): string {
      const rows = ofBuild.all(buildId) as { data: Uint8Array }[];
      return Buffer.concat(rows.map((r) => Buffer.from(r.data))).toString("utf8");
    },

    /** Deletes at most `limit` log chunks of builds that ended before `cutoff`; returns how many. */
    pruneOfEnded(cutoff: Date, limit: number): number {
      return prune.run(cutoff.toISOString(), limit).changes;
    },
  };
}
