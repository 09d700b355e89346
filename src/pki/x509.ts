/**
 * @module pki/x509
 * Certificate mechanics on native WebCrypto (ECDSA P-256, SHA-256) with @peculiar/x509: key
 * pairs, serials, and the extension profiles Slipway issues. No policy lives here.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

export const EC_ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
export const SIGN_ALG = { name: "ECDSA", hash: "SHA-256" } as const;
/** Tolerates clocks a little behind ours. */
export const BACKDATE_MS = 60_000;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
}

export async function exportPkcs8(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", key));
}

export async function importSigningKey(pkcs8: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, EC_ALG, false, ["sign"]);
}

/** 128 random bits, top bit clear so the DER INTEGER stays positive and 16 bytes long. */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return Buffer.from(b).toString("hex");
}

export interface CaProfile {
  pathLength: number;
}

export async function caExtensions(
  publicKey: CryptoKey,
  profile: CaProfile,
  issuerPublicKey?: CryptoKey,
): Promise<x509.Extension[]> {
  const ext: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, profile.pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  if (issuerPublicKey) ext.push(await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey));
  return ext;
}

export type LeafUsage = "server" | "client";

export interface LeafNames {
  dns?: string[];
  ip?: string[];
  uri?: string[];
}

export { x509 };
