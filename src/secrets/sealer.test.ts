/**
 * @module secrets/sealer.test
 * Covers createSealer: round trip, binding to associated data, tamper detection, refusal of a
 * blob sealed under another master key (naming both key ids), key id stability, random IVs and
 * rejection of malformed input.
 */
import { describe, expect, test } from "bun:test";
import { createSealer, SealedSecretError } from "./sealer.ts";

const randomKey = () => crypto.getRandomValues(new Uint8Array(32));
const text = (s: string) => new TextEncoder().encode(s);

/** Awaits `p`, expects a SealedSecretError and returns its message. */
async function sealedError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SealedSecretError);
    return (e as Error).message;
  }
  throw new Error("expected a SealedSecretError, but the promise resolved");
}

describe("createSealer", () => {
  test("unseal(seal(x)) returns x, and the sealed form does not contain x", async () => {
    const s = await createSealer(randomKey());
    const secret = text("the volume key of vol_abc: 0123456789abcdef");
    const sealed = await s.seal(secret, "volume:vol_abc");
    expect(Buffer.from(sealed).includes(Buffer.from(secret))).toBe(false);
    // version byte + 8-byte key id + 12-byte IV + ciphertext + 16-byte tag
    expect(sealed.length).toBe(1 + 8 + 12 + secret.length + 16);
    expect(sealed[0]).toBe(1);
    expect(Buffer.from(sealed.subarray(1, 9)).toString("hex")).toBe(s.keyId);
    expect(await s.unseal(sealed, "volume:vol_abc")).toEqual(secret);
  });

  test("an empty secret round-trips", async () => {
    const s = await createSealer(randomKey());
    expect(await s.unseal(await s.seal(new Uint8Array(0), "x"), "x")).toEqual(new Uint8Array(0));
  });

  test("different associated data fails to open", async () => {
    const s = await createSealer(randomKey());
    const sealed = await s.seal(text("secret"), "ca:one");
    const msg = await sealedError(s.unseal(sealed, "ca:two"));
    expect(msg).toContain("failed authentication");
  });

  test("a flipped ciphertext or tag byte fails to open", async () => {
    const s = await createSealer(randomKey());
    const sealed = await s.seal(text("a secret of some length"), "ad");
    for (const i of [1 + 8 + 12, sealed.length - 1, 1 + 8]) {
      const tampered = new Uint8Array(sealed);
      tampered[i] = tampered[i]! ^ 0x01;
      await sealedError(s.unseal(tampered, "ad"));
    }
  });

  test("a blob sealed under another master key names both key ids", async () => {
    const a = await createSealer(randomKey());
    const b = await createSealer(randomKey());
    const sealed = await a.seal(text("secret"), "ad");
    const msg = await sealedError(b.unseal(sealed, "ad"));
    expect(msg).toContain(a.keyId);
    expect(msg).toContain(b.keyId);
  });

  test("keyId is 16 hex chars, stable for the same key and different for another", async () => {
    const key = randomKey();
    const one = await createSealer(key);
    const two = await createSealer(new Uint8Array(key));
    const other = await createSealer(randomKey());
    expect(one.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(two.keyId).toBe(one.keyId);
    expect(other.keyId).not.toBe(one.keyId);
    // A sealer built from the same key bytes opens what the first one sealed.
    expect(await two.unseal(await one.seal(text("x"), "ad"), "ad")).toEqual(text("x"));
  });

  test("two seals of the same plaintext differ (random IV)", async () => {
    const s = await createSealer(randomKey());
    const a = await s.seal(text("same"), "ad");
    const b = await s.seal(text("same"), "ad");
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(Buffer.from(a.subarray(9, 21)).equals(Buffer.from(b.subarray(9, 21)))).toBe(false);
  });

  test("truncated or unknown-version blobs are malformed", async () => {
    const s = await createSealer(randomKey());
    const sealed = await s.seal(text("secret"), "ad");
    expect(await sealedError(s.unseal(sealed.subarray(0, 20), "ad"))).toContain("malformed");
    const v2 = new Uint8Array(sealed);
    v2[0] = 2;
    expect(await sealedError(s.unseal(v2, "ad"))).toContain("unknown version");
  });

  test("a master key that is not 32 bytes is refused", async () => {
    await expect(createSealer(new Uint8Array(16))).rejects.toThrow("32 bytes");
  });
});
