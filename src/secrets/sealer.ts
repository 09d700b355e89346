/**
 * @module secrets/sealer
 * Wraps secrets at rest with AES-256-GCM under the master key. Every sealed value names the
 * key that sealed it (a fingerprint, not the key), and binds associated data (what the secret
 * belongs to, e.g. a CA id or volume id) so a sealed blob copied onto another row fails to open.
 *
 * Layout: 0x01 | key fingerprint (8) | IV (12) | ciphertext with 16-byte tag.
 */
import { PreconditionError } from "../errors.ts";

const VERSION = 1;
const FP_LEN = 8;
const IV_LEN = 12;

export class SealedSecretError extends PreconditionError {
  override name = "SealedSecretError";
}

export interface Sealer {
  /** Hex fingerprint of the master key (safe to log and store). */
  readonly keyId: string;
  seal(plaintext: Uint8Array, associatedData: string): Promise<Uint8Array>;
  unseal(sealed: Uint8Array, associatedData: string): Promise<Uint8Array>;
}

export async function createSealer(masterKey: Uint8Array): Promise<Sealer> {
  if (masterKey.length !== 32) throw new Error("master key must be 32 bytes");
  const key = await crypto.subtle.importKey("raw", masterKey as Uint8Array<ArrayBuffer>, { name: "AES-GCM" }, false, [
    "encrypt",
    "decrypt",
  ]);
  const fpFull = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new Uint8Array([...new TextEncoder().encode("slipway master key id\0"), ...masterKey]),
    ),
  );
  const fp = fpFull.slice(0, FP_LEN);
  const keyId = Buffer.from(fp).toString("hex");
  const enc = new TextEncoder();

  return {
    keyId,
    async seal(plaintext, associatedData) {
      const iv = crypto.getRandomValues(new Uint8Array(IV_LEN));
      const ct = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: enc.encode(associatedData) },
          key,
          plaintext as Uint8Array<ArrayBuffer>,
        ),
      );
      const out = new Uint8Array(1 + FP_LEN + IV_LEN + ct.length);
      out[0] = VERSION;
      out.set(fp, 1);
      out.set(iv, 1 + FP_LEN);
      out.set(ct, 1 + FP_LEN + IV_LEN);
      return out;
    },
    async unseal(sealed, associatedData) {
      if (sealed.length < 1 + FP_LEN + IV_LEN + 16 || sealed[0] !== VERSION) {
        throw new SealedSecretError("sealed secret is malformed or of an unknown version");
      }
      const sealedFp = Buffer.from(sealed.subarray(1, 1 + FP_LEN)).toString("hex");
      if (sealedFp !== keyId) {
        throw new SealedSecretError(
          `secret was sealed under master key ${sealedFp}, but the loaded master key is ${keyId}; is this the data dir's own master key?`,
        );
      }
      try {
        return new Uint8Array(
          await crypto.subtle.decrypt(
            {
              name: "AES-GCM",
              iv: sealed.subarray(1 + FP_LEN, 1 + FP_LEN + IV_LEN) as Uint8Array<ArrayBuffer>,
              additionalData: enc.encode(associatedData),
            },
            key,
            sealed.subarray(1 + FP_LEN + IV_LEN) as Uint8Array<ArrayBuffer>,
          ),
        );
      } catch {
        throw new SealedSecretError("sealed secret failed authentication (tampered, or bound to another record)");
      }
    },
  };
}
