/**
 * @module registry/signing
 * The registry token service's key: ES256 (P-256) on WebCrypto, generated once and kept sealed
 * under the master key, and a self-signed certificate for it that the registry trusts through
 * `auth.token.rootcertbundle`. Registry 2.8 finds the key of a token by its `kid` header, in
 * libtrust's format: the SHA-256 of the public key's DER (SubjectPublicKeyInfo), its first 240
 * bits in base32, as 12 colon-separated groups of 4. Only the JWT itself is assembled here; the
 * signature is WebCrypto's (IEEE P1363 r||s, which is what JWS ES256 wants).
 */
import type { Database } from "bun:sqlite";
import { newId } from "../ids.ts";
import { EC_ALG, SIGN_ALG, exportPkcs8, generateKeyPair, randomSerial, x509 } from "../pki/x509.ts";
import type { Sealer } from "../secrets/index.ts";

export interface SigningKey {
  /** libtrust key id of the public key (the JWT `kid`). */
  kid: string;
  /** PEM of a self-signed certificate for the key: the registry's rootcertbundle. */
  certPem: string;
  /** A compact JWS (ES256) of `claims`. */
  sign(claims: Record<string, unknown>): Promise<string>;
  /** The claims of a JWS this key signed, or null (bad shape, bad signature, expired). */
  verify(jws: string, nowSeconds?: number): Promise<Record<string, unknown> | null>;
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32, no padding. */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust's key id of a public key given as SubjectPublicKeyInfo DER. */
export function libtrustKeyId(spki: Uint8Array): string {
  const hash = new Bun.CryptoHasher("sha256").update(spki).digest();
  const b32 = base32(new Uint8Array(hash).subarray(0, 30));
  return b32.match(/.{4}/g)!.join(":");
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");

async function fromPrivate(pkcs8: Uint8Array): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey }> {
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, EC_ALG, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
    EC_ALG,
    true,
    ["verify"],
  );
  return { privateKey, publicKey };
}

/** A signing key from PKCS#8 DER, with a fresh self-signed certificate (valid 10 years). */
export async function signingKeyOf(pkcs8: Uint8Array): Promise<SigningKey> {
  const keys = await fromPrivate(pkcs8);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const kid = libtrustKeyId(spki);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=Slipway registry token signer",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3650 * 86_400_000),
    signingAlgorithm: SIGN_ALG,
    keys,
  });
  const enc = new TextEncoder();
  return {
    kid,
    certPem: cert.toString("pem"),
    async sign(claims) {
      const input = `${b64url(JSON.stringify({ typ: "JWT", alg: "ES256", kid }))}.${b64url(JSON.stringify(claims))}`;
      const sig = new Uint8Array(await crypto.subtle.sign(SIGN_ALG, keys.privateKey, enc.encode(input)));
      return `${input}.${b64url(sig)}`;
    },
    async verify(jws, nowSeconds = Math.floor(Date.now() / 1000)) {
      const parts = jws.split(".");
      if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return null;
      try {
        const header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8")) as Record<string, unknown>;
        if (header.alg !== "ES256" || header.kid !== kid) return null;
        const ok = await crypto.subtle.verify(
          SIGN_ALG,
          keys.publicKey,
          Buffer.from(parts[2]!, "base64url"),
          enc.encode(`${parts[0]}.${parts[1]}`),
        );
        if (!ok) return null;
        const claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
        if (typeof claims.exp !== "number" || claims.exp <= nowSeconds) return null;
        return claims;
      } catch {
        return null;
      }
    },
  };
}

/** The appliance's registry signing key: loaded (unsealed) from the database, or made and
 * stored sealed on first use. */
export async function loadSigningKey(deps: {
  db: Database;
  sealer: Pick<Sealer, "seal" | "unseal">;
}): Promise<SigningKey> {
  const { db, sealer } = deps;
  const row = db.query("SELECT id, sealed_key FROM registry_signing_keys ORDER BY created_at DESC LIMIT 1").get() as {
    id: string;
    sealed_key: Uint8Array;
  } | null;
  if (row) return signingKeyOf(await sealer.unseal(row.sealed_key, `registry-signing-key:${row.id}`));
  const id = newId("rsk");
  const pkcs8 = await exportPkcs8((await generateKeyPair()).privateKey);
  const sealed = await sealer.seal(pkcs8, `registry-signing-key:${id}`);
  db.query("INSERT INTO registry_signing_keys (id, sealed_key, created_at) VALUES (?, ?, ?)").run(
    id,
    sealed,
    new Date().toISOString(),
  );
  return signingKeyOf(pkcs8);
}
