/**
 * @module builders/engine-privileges
 * The `builder_engine_privileges` table, owned here: which Docker engines (by identity, per OCI
 * runtime) refused a privileged builder. A start on such an engine uses the fallback profile at
 * once (security.ts) instead of a privileged attempt that costs 0.3–0.45 s to be refused; an
 * engine whose identity changed (another engine, an upgrade, another kernel or security options)
 * has no row, so the next start asks for privileged again.
 */
import type { Database } from "bun:sqlite";

export type EnginePrivileges = ReturnType<typeof enginePrivilegesFactory>;

export function enginePrivilegesFactory({ db, now = () => new Date() }: { db: Database; now?: () => Date }) {
  return {
    /** Whether this engine refused a privileged builder under this OCI runtime (null: its default). */
    refused(engineIdentity: string, ociRuntime: string | null): boolean {
      return (
        db
          .query("SELECT 1 FROM builder_engine_privileges WHERE engine_identity = ? AND oci_runtime = ?")
          .get(engineIdentity, ociRuntime ?? "") !== null
      );
    },

    /** Remembers that the engine refused a privileged builder, and why. */
    rememberRefusal(engineIdentity: string, ociRuntime: string | null, refusal: string): void {
      db.query(
        `INSERT INTO builder_engine_privileges (engine_identity, oci_runtime, refusal, refused_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (engine_identity, oci_runtime) DO UPDATE SET refusal = excluded.refusal, refused_at = excluded.refused_at`,
      ).run(engineIdentity, ociRuntime ?? "", refusal.slice(0, 1000), now().toISOString());
    },
  };
}
