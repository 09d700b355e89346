/**
 * @module volumes/keys
 * Per-volume LUKS keys at rest: 64 random bytes, sealed with AES-256-GCM under the master key
 * (src/secrets), bound to the volume id and key generation as associated data — a sealed key
 * copied onto another volume's row, or replayed as another generation, fails to open.
 */
import type { Database } from "bun:sqlite";
import type { Sealer } from "../secrets/index.ts";
import { VOLUME_KEY_BYTES } from "./cryptsetup.ts";

export function newVolumeKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(VOLUME_KEY_BYTES));
}

export function volumeKeyAad(volumeId: string, generation: number): string {
  return `slipway volume key\0${volumeId}\0${generation}`;
}

export function wrapVolumeKey(
  sealer: Sealer,
  key: Uint8Array,
  volumeId: string,
  generation: number,
): Promise<Uint8Array> {
  return sealer.seal(key, volumeKeyAad(volumeId, generation));
}

export async function unwrapVolumeKey(
  sealer: Sealer,
  sealed: Uint8Array,
  volumeId: string,
  generation: number,
): Promise<Uint8Array> {
  const key = await sealer.unseal(sealed, volumeKeyAad(volumeId, generation));
  if (key.length !== VOLUME_KEY_BYTES) throw new Error(`volume ${volumeId}: unwrapped key has ${key.length} bytes`);
  return key;
}

/**
 * Master-key rotation: re-seals every stored volume key (and any pending rotation key) from the
 * old master key to the new one, in one transaction. LUKS headers are not touched: the volume
 * keys themselves stay the same. Returns how many volumes were rewrapped.
 */
export async function rewrapVolumeKeys(deps: { db: Database; from: Sealer; to: Sealer }): Promise<number> {
  const rows = deps.db
    .query("SELECT id, key_generation, sealed_key, pending_key_generation, pending_sealed_key FROM volumes")
    .all() as {
    id: string;
    key_generation: number;
    sealed_key: Uint8Array;
    pending_key_generation: number | null;
    pending_sealed_key: Uint8Array | null;
  }[];
  // Unseal and reseal everything first (async), then write in one synchronous transaction:
  // either every row moves to the new master key or none does.
  const updates: { id: string; generation: number; sealed: Uint8Array; pending: Uint8Array | null }[] = [];
  for (const r of rows) {
    const key = await unwrapVolumeKey(deps.from, r.sealed_key, r.id, r.key_generation);
    const sealed = await wrapVolumeKey(deps.to, key, r.id, r.key_generation);
    key.fill(0);
    let pending: Uint8Array | null = null;
    if (r.pending_sealed_key && r.pending_key_generation !== null) {
      const pk = await unwrapVolumeKey(deps.from, r.pending_sealed_key, r.id, r.pending_key_generation);
      pending = await wrapVolumeKey(deps.to, pk, r.id, r.pending_key_generation);
      pk.fill(0);
    }
    updates.push({ id: r.id, generation: r.key_generation, sealed, pending });
  }
  const now = new Date().toISOString();
  deps.db.transaction(() => {
    const q = deps.db.query(
      "UPDATE volumes SET sealed_key = ?, pending_sealed_key = ?, updated_at = ? WHERE id = ? AND key_generation = ?",
    );
    for (const u of updates) {
      // A volume rotated its key meanwhile: roll everything back rather than store a stale key.
      if (q.run(u.sealed, u.pending, now, u.id, u.generation).changes !== 1)
        throw new Error(`volume ${u.id} changed during the rewrap; run it again`);
    }
  })();
  return updates.length;
}
