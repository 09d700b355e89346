/**
 * @module auth/oidc/jwt
 * Strict parsing and signature verification of compact JWS tokens (header.payload.signature).
 * Only RS256 and ES256 are accepted, chosen here and not by the token: `none`, every HMAC
 * algorithm (the classic "sign HS256 with the RSA public key" confusion), PS* and anything else
 * are refused before a key is even looked up. The key must agree with the algorithm (an RSA key
 * never verifies an ES256 token and vice versa). Verification uses WebCrypto only.
 */
import { reject, sanitizeForReason } from "./reject.ts";

/** A public JSON Web Key as published in a JWKS (only the members we read are named). */
export interface Jwk {
  kty?: string;
  kid?: string;
  use?: string;
  alg?: string;
  crv?: string;
  n?: string;
  e?: string;
  x?: string;
  y?: string;
  [member: string]: unknown;
}

export interface JsonWebKeySet {
  keys: Jwk[];
}

export const ALLOWED_ALGS = ["RS256", "ES256"] as const;
export type JwsAlg = (typeof ALLOWED_ALGS)[number];

export interface ParsedJws {
  alg: JwsAlg;
  kid: string;
  header: Record<string, unknown>;
  /** Untrusted until verifyJwsSignature has resolved. */
  payload: Record<string, unknown>;
  signingInput: Uint8Array<ArrayBuffer>;
  signature: Uint8Array<ArrayBuffer>;
}

/** Real CI tokens are 1-3 KiB; the bound keeps a hostile header from costing us work. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** Below this an RSA key is not trustworthy (NIST SP 800-131A). */
const MIN_RSA_BITS = 2048;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const ascii = new TextEncoder();

/** Strict base64url: the URL alphabet, no padding, canonical (no stray trailing bits). */
export function base64UrlDecode(part: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(part) || part.length % 4 === 1) return null;
  const bytes = Buffer.from(part, "base64url");
  if (bytes.toString("base64url") !== part) return null;
  return new Uint8Array(bytes); // a copy that owns a plain ArrayBuffer, as WebCrypto's types want
}

function jsonObject(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(utf8.decode(bytes));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Parses a compact JWS. Rejects (UnauthenticatedError) on any malformation or disallowed header. */
export function parseJws(raw: string): ParsedJws {
  if (typeof raw !== "string" || raw.length === 0) reject("oidc: malformed token: empty");
  if (raw.length > MAX_TOKEN_LENGTH) reject("oidc: malformed token: too large");
  const parts = raw.split(".");
  if (parts.length !== 3) reject("oidc: malformed token: expected 3 parts");
  const [h, p, s] = parts as [string, string, string];

  const headerBytes = base64UrlDecode(h);
  if (!headerBytes || headerBytes.length === 0) reject("oidc: malformed token: header is not base64url");
  const header = jsonObject(headerBytes);
  if (!header) reject("oidc: malformed token: header is not a JSON object");

  const alg = header.alg;
  if (typeof alg !== "string" || !(ALLOWED_ALGS as readonly string[]).includes(alg)) {
    reject(`oidc: algorithm ${sanitizeForReason(alg)} not allowed`);
  }
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0) reject("oidc: kid missing");
  // We understand no JWS extensions, so a critical one means we must refuse (RFC 7515 §4.1.11).
  if ("crit" in header) reject("oidc: crit header not supported");

  const payloadBytes = base64UrlDecode(p);
  if (!payloadBytes || payloadBytes.length === 0) reject("oidc: malformed token: payload is not base64url");
  const payload = jsonObject(payloadBytes);
  if (!payload) reject("oidc: malformed token: payload is not a JSON object");

  const signature = base64UrlDecode(s);
  if (!signature || signature.length === 0) reject("oidc: malformed token: signature missing");

  return { alg: alg as JwsAlg, kid, header, payload, signingInput: ascii.encode(`${h}.${p}`), signature };
}

/** Imported keys, per JWK object: cached JWKS entries are the same objects from one token to the next. */
const imported = new WeakMap<Jwk, CryptoKey>();

function b64Length(v: unknown): number {
  return typeof v === "string" ? (base64UrlDecode(v)?.length ?? 0) : 0;
}

async function importFor(alg: JwsAlg, jwk: Jwk): Promise<CryptoKey> {
  const cached = imported.get(jwk);
  if (cached) return cached;
  let key: CryptoKey;
  try {
    // Only the public members: a JWK's own alg/use/key_ops must not make import fail or widen use.
    key =
      alg === "RS256"
        ? await crypto.subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e, ext: true }, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"])
        : await crypto.subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, ext: true }, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  } catch {
    reject("oidc: invalid key");
  }
  imported.set(jwk, key);
  return key;
}

/**
 * Checks that `jwk` may verify a token signed with `jws.alg`, then verifies the signature.
 * Resolves when valid; rejects with a distinct reason otherwise.
 */
export async function verifyJwsSignature(jws: ParsedJws, jwk: Jwk): Promise<void> {
  // Checked first and from the key itself: this is what stops an RSA key verifying ES256 and back.
  const rightType = jws.alg === "RS256" ? jwk.kty === "RSA" : jwk.kty === "EC" && jwk.crv === "P-256";
  if (!rightType) reject("oidc: key type does not match algorithm");
  if (jwk.use !== undefined && jwk.use !== "sig") reject("oidc: key is not a signing key");
  if (jwk.alg !== undefined && jwk.alg !== jws.alg) reject("oidc: key algorithm does not match token");
  let ok: boolean;
  if (jws.alg === "RS256") {
    if (typeof jwk.e !== "string" || b64Length(jwk.n) * 8 < MIN_RSA_BITS) reject("oidc: invalid key");
    const key = await importFor("RS256", jwk);
    ok = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, jws.signature, jws.signingInput);
  } else {
    // JWS ES256 signatures are raw r||s (RFC 7518 §3.4), which is also WebCrypto's format; DER is refused.
    if (jws.signature.length !== 64) reject("oidc: bad signature");
    const key = await importFor("ES256", jwk);
    ok = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, jws.signature, jws.signingInput);
  }
  if (!ok) reject("oidc: bad signature");
}
