/**
 * @module volumes/keys.test
 * Volume keys at rest: sealed under the master key, bound to volume id and generation, and
 * rewrapped (all or nothing) when the master key rotates.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { createSealer, type Sealer } from "../secrets/index.ts";
import { newVolumeKey, rewrapVolumeKeys, unwrapVolumeKey, wrapVolumeKey } from "./keys.ts";

let db: Database;
let a: Sealer;
let b: Sealer;
beforeEach(async () => {
  db = openDatabase(":memory:");
  applyMigrations(db);
  a = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
  b = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
});
afterEach(() => db.close());

async function insert(
  id: string,
  project: string,
  gen: number,
  key: Uint8Array,
  pending?: { gen: number; key: Uint8Array },
) {
  db.query(
    `INSERT INTO volumes (id, project_id, platform, backend, device, filesystem, size_bytes, state, key_generation, sealed_key, rotation, pending_key_generation, pending_sealed_key, created_at, updated_at)
     VALUES (?, ?, 'linux/amd64', 'file', '/x', 'ext4', 1, 'ready', ?, ?, ?, ?, ?, '', '')`,
  ).run(
    id,
    project,
    gen,
    await wrapVolumeKey(a, key, id, gen),
    pending ? "adding" : null,
    pending?.gen ?? null,
    pending ? await wrapVolumeKey(a, pending.key, id, pending.gen) : null,
  );
}
const row = (id: string) =>
  db.query("SELECT * FROM volumes WHERE id = ?").get(id) as {
    sealed_key: Uint8Array;
    pending_sealed_key: Uint8Array | null;
  };

describe("volume key wrapping", () => {
  test("64 random bytes; sealed, never stored in plain; bound to volume id and generation", async () => {
    const key = newVolumeKey();
    expect(key).toHaveLength(64);
    expect(Buffer.from(newVolumeKey()).equals(Buffer.from(key))).toBe(false);
    const sealed = await wrapVolumeKey(a, key, "vol_1", 3);
    expect(Buffer.from(sealed).indexOf(Buffer.from(key))).toBe(-1);
    expect(await unwrapVolumeKey(a, sealed, "vol_1", 3)).toEqual(key);
    await expect(unwrapVolumeKey(a, sealed, "vol_2", 3)).rejects.toThrow(/authentication/);
    await expect(unwrapVolumeKey(a, sealed, "vol_1", 4)).rejects.toThrow(/authentication/);
    await expect(unwrapVolumeKey(b, sealed, "vol_1", 3)).rejects.toThrow(/master key/);
  });
});

describe("master-key rotation rewraps", () => {
  test("every stored and pending key moves to the new master key; the volume keys stay the same", async () => {
    const k1 = newVolumeKey();
    const k2 = newVolumeKey();
    const p2 = newVolumeKey();
    await insert("vol_1", "prj_a", 1, k1);
    await insert("vol_2", "prj_b", 5, k2, { gen: 6, key: p2 });
    expect(await rewrapVolumeKeys({ db, from: a, to: b })).toBe(2);
    expect(await unwrapVolumeKey(b, row("vol_1").sealed_key, "vol_1", 1)).toEqual(k1);
    expect(await unwrapVolumeKey(b, row("vol_2").sealed_key, "vol_2", 5)).toEqual(k2);
    expect(await unwrapVolumeKey(b, row("vol_2").pending_sealed_key!, "vol_2", 6)).toEqual(p2);
    await expect(unwrapVolumeKey(a, row("vol_1").sealed_key, "vol_1", 1)).rejects.toThrow();
  });

  test("all or nothing: a key the old master key cannot open stops the rewrap with nothing changed", async () => {
    await insert("vol_1", "prj_a", 1, newVolumeKey());
    await insert("vol_2", "prj_b", 1, newVolumeKey());
    const before = row("vol_1").sealed_key;
    db.query("UPDATE volumes SET sealed_key = ? WHERE id = 'vol_2'").run(
      await wrapVolumeKey(b, newVolumeKey(), "vol_2", 1),
    );
    await expect(rewrapVolumeKeys({ db, from: a, to: b })).rejects.toThrow();
    expect(Buffer.from(row("vol_1").sealed_key).equals(Buffer.from(before))).toBe(true);
  });
});
