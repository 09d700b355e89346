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
    /** Newest first. `orgId` undefined: the whole appliance (administrator only). */
    list(opts: { orgId?: string; limit: number; beforeId?: number }): AuditRecord[] {
      const rows = db
        .query(
          `SELECT * FROM audit_log WHERE (?1 IS NULL OR org_id = ?1) AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3`,
        )
        .all(opts.orgId ?? null, opts.beforeId ?? null, opts.limit) as (Omit<AuditRecord, "details"> & {
        details: string;
      })[];
      return rows.map((r) => ({ ...r, details: JSON.parse(r.details) }));
    },
  };
}
