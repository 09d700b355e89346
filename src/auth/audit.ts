/**
 * @module auth/audit
 * The append-only audit log: logins and failed authentications, token creation and revocation,
 * membership and role changes, trust changes, certificate issuance. Details never hold secrets.
 */
import type { Database } from "bun:sqlite";
import { actorLabel, type Actor } from "./actor.ts";

export interface AuditEvent {
  orgId?: string | null;
  actor: Actor | string;
  action: string;
  target?: string | null;
  outcome?: "success" | "failure";
  ip?: string | null;
  details?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  at: string;
  org_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  outcome: "success" | "failure";
  ip: string | null;
  details: Record<string, unknown>;
}

/** What the audit log can be narrowed to (the API's query, resolved: actor names are labels here). */
export interface AuditFilter {
  actors?: string[];
  action?: string;
  since?: string;
  until?: string;
}

export type AuditService = ReturnType<typeof auditServiceFactory>;

export function auditServiceFactory({ db, now = () => new Date() }: { db: Database; now?: () => Date }) {
  const insert = db.query(
    "INSERT INTO audit_log (at, org_id, actor, action, target, outcome, ip, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  return {
    record(e: AuditEvent): void {
      insert.run(
        now().toISOString(),
        e.orgId ?? null,
        typeof e.actor === "string" ? e.actor : actorLabel(e.actor),
        e.action,
        e.target ?? null,
        e.outcome ?? "success",
        e.ip ?? null,
        JSON.stringify(e.details ?? {}),
      );
    },
    /**
     * Newest first. `orgId` undefined: the whole appliance (administrator only). `actors`: any of
     * these actor labels; `action`: that action or its family (`member` or `member.` matches
     * `member.add`); `since`/`until`: ISO 8601 UTC bounds on `at` (inclusive), compared as the
     * strings `record` writes.
     */
    list(opts: AuditFilter & { orgId?: string; limit: number; beforeId?: number }): AuditRecord[] {
      const family = opts.action?.replace(/\.$/, "") ?? null;
      const actors = opts.actors ?? null;
      const rows = db
        .query(
          `SELECT * FROM audit_log
            WHERE (?1 IS NULL OR org_id = ?1) AND (?2 IS NULL OR id < ?2)
              AND (?3 IS NULL OR actor IN (SELECT value FROM json_each(?3)))
              AND (?4 IS NULL OR action = ?4 OR substr(action, 1, length(?4) + 1) = ?4 || '.')
              AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at <= ?6)
            ORDER BY id DESC LIMIT ?7`,
        )
        .all(
          opts.orgId ?? null,
          opts.beforeId ?? null,
          actors ? JSON.stringify(actors) : null,
          family,
          opts.since ?? null,
          opts.until ?? null,
          opts.limit,
        ) as (Omit<AuditRecord, "details"> & {
        details: string;
      })[];
      return rows.map((r) => ({ ...r, details: JSON.parse(r.details) }));
    },
  };
}
