/**
 * @module appliance/identity-row
 * The `appliance` table's owner: the one row naming this appliance (its id goes into CA subjects,
 * build certificate URIs and builder labels). Made once, at first start, and never changed.
 */
import type { Database } from "bun:sqlite";

/** The appliance's id, made on first call and the same ever after. */
export function ensureApplianceId(db: Database, now = new Date()): string {
  db.query("INSERT OR IGNORE INTO appliance (singleton, id, created_at) VALUES (1, ?, ?)").run(
    crypto.randomUUID().replace(/-/g, "").slice(0, 16),
    now.toISOString(),
  );
  return readApplianceId(db)!;
}

/** The appliance's id, or null before the first start made it. */
export function readApplianceId(db: Database): string | null {
  return (db.query("SELECT id FROM appliance").get() as { id: string } | null)?.id ?? null;
}
