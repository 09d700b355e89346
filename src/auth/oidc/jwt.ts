/**
 * @module auth/oidc/jwt
 * Compact JWS tokens (header.payload.signature), decoded and verified by `jose`. Slipway adds its
 * own policy around it: only RS256 and ES256, chosen here and not by the token (`none`, every
 * HMAC algorithm — the classic "sign HS256 with the RSA public key" confusion —, PS* and anything
 * else are refused before a key is even looked up), a kid is required, no `crit` extensions, and
 * the key must agree with the algorithm (an RSA key never verifies an ES256 token and back).
 * Keys come from the caller's resolver (auth/oidc/keys.ts: cache, pasted key sets, refetch limits).
 */
import { compactVerify, decodeJwt, decodeProtectedHeader, errors, importJWK, type CryptoKey as JoseKey } from "jose";
import { UnauthenticatedError } from "../../errors.ts";
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

/** What a token says before its signature is checked: good only for choosing keys and trusts. */
export interface UnverifiedJws {
  alg: JwsAlg;
  kid: string;
  payload: Record<string, unknown>;
}

/** Real CI tokens are 1-3 KiB; the bound keeps a hostile header from costing us work. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** Below this an RSA key is not trustworthy (NIST SP 800-131A). */
const MIN_RSA_BITS = 2048;

/** Decodes a compact JWS (untrusted) and applies the header policy. Rejects with a reason. */
export function peekJws(raw: string): UnverifiedJws {
  if (typeof raw !== "string" || raw.length === 0) reject("oidc: malformed token: empty");
  if (raw.length > MAX_TOKEN_LENGTH) reject("oidc: malformed token: too large");
  const parts = raw.split(".");
  if (parts.length !== 3) reject("oidc: malformed token: expected 3 parts");
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(raw) as Record<string, unknown>;
  } catch {
    reject("oidc: malformed token: header is not base64url JSON");
  }
  const alg = header.alg;
  if (typeof alg !== "string" || !(ALLOWED_ALGS as readonly string[]).includes(alg)) {
    reject(`oidc: algorithm ${sanitizeForReason(alg)} not allowed`);
  }
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0) reject("oidc: kid missing");
  // We understand no JWS extensions, so a critical one means we must refuse (RFC 7515 §4.1.11).
  if ("crit" in header) reject("oidc: crit header not supported");
  if (parts[2] === "") reject("oidc: malformed token: signature missing");
  let payload: Record<string, unknown>;
  try {
    payload = decodeJwt(raw) as Record<string, unknown>;
  } catch {
    reject("oidc: malformed token: payload is not base64url JSON");
  }
  return { alg: alg as JwsAlg, kid, payload };
}

/** Imported keys, per JWK object and algorithm: cached JWKS entries are the same objects from one token to the next. */
const imported = new WeakMap<Jwk, Map<JwsAlg, JoseKey>>();

/** Checks that `jwk` may verify a token signed with `alg` (from the key itself), then imports it. */
async function verificationKey(alg: JwsAlg, jwk: Jwk): Promise<JoseKey> {
  // Checked first and from the key itself: this is what stops an RSA key verifying ES256 and back.
  const rightType = alg === "RS256" ? jwk.kty === "RSA" : jwk.kty === "EC" && jwk.crv === "P-256";
  if (!rightType) reject("oidc: key type does not match algorithm");
  if (jwk.use !== undefined && jwk.use !== "sig") reject("oidc: key is not a signing key");
  if (jwk.alg !== undefined && jwk.alg !== alg) reject("oidc: key algorithm does not match token");
  if (
    alg === "RS256" &&
    (typeof jwk.e !== "string" ||
      typeof jwk.n !== "string" ||
      Buffer.from(jwk.n, "base64url").length * 8 < MIN_RSA_BITS)
  )
    reject("oidc: invalid key");
  const cached = imported.get(jwk)?.get(alg);
  if (cached) return cached;
  let key: JoseKey;
  try {
    // Only the public members: a JWK's own alg/use/key_ops must not make import fail or widen use.
    const members =
      alg === "RS256" ? { kty: "RSA", n: jwk.n, e: jwk.e } : { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y };
    key = (await importJWK(members, alg)) as JoseKey;
  } catch {
    reject("oidc: invalid key");
  }
  let byAlg = imported.get(jwk);
  if (!byAlg) imported.set(jwk, (byAlg = new Map()));
  byAlg.set(alg, key);
  return key;
}

/**
 * Verifies `raw`'s signature with the key `jwkFor(kid)` resolves to and returns its payload (now
 * the issuer's word). Rejects with a distinct reason: the resolver's own, or the signature's.
 */
export async function verifyJws(raw: string, jwkFor: (kid: string) => Promise<Jwk>): Promise<Record<string, unknown>> {
  const { payload } = peekJws(raw);
  try {
    await compactVerify(
      raw,
      async (header) => verificationKey(header.alg as JwsAlg, await jwkFor(String(header.kid))),
      { algorithms: [...ALLOWED_ALGS] },
    );
  } catch (e) {
    if (e instanceof UnauthenticatedError) throw e;
    if (e instanceof errors.JWSSignatureVerificationFailed) reject("oidc: bad signature");
    if (e instanceof errors.JOSEAlgNotAllowed) reject("oidc: algorithm not allowed");
    if (e instanceof errors.JWSInvalid) reject("oidc: malformed token");
    reject("oidc: invalid key"); // jose refusing the key itself (e.g. an RSA modulus below 2048 bits)
  }
  return payload;
}
