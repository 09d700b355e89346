/**
 * @module auth/oidc/verify
 * Verifies a CI job's OIDC token against a project's trust relationships: the JWS (decoded and
 * checked by jose, under our header policy), signature by the issuer's key, registered time claims, audience, then provider claim matching.
 * The payload is untrusted until the signature holds; before that only `iss` is read, and only to
 * pick the candidate trusts (and so the keys) — an issuer no trust names is refused without any
 * network traffic. Every refusal is an UnauthenticatedError with a distinct reason.
 */
import { peekJws, verifyJws, type JsonWebKeySet } from "./jwt.ts";
import type { OidcKeys } from "./keys.ts";
import { reject } from "./reject.ts";
import { audienceMatches, claimsMatch, type TrustRelationship } from "./trust-rules.ts";

export interface CiTokenVerifierDeps {
  keys: OidcKeys;
  now?: () => Date;
  /** Tolerated clock difference with the issuer, applied to exp, nbf and iat. */
  skewSeconds?: number;
  /** A token issued longer ago than this is refused even if its exp is later. */
  maxTokenAgeSeconds?: number;
}

export interface VerifiedCiToken {
  claims: Record<string, unknown>;
  /** Every trust whose audience and claims the token satisfies (at least one). */
  matched: TrustRelationship[];
  /** The token's own exp; the caller caps the credential it issues. */
  expiresAt: Date;
}

export type CiTokenVerifier = ReturnType<typeof ciTokenVerifierFactory>;

/** A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional. */
function numericDate(claims: Record<string, unknown>, name: string, required: boolean): number | undefined {
  const v = claims[name];
  if (v === undefined) {
    if (required) reject(`oidc: ${name} missing`);
    return undefined;
  }
  if (typeof v !== "number" || !Number.isFinite(v)) reject(`oidc: ${name} invalid`);
  return v;
}

export function ciTokenVerifierFactory({
  keys,
  now = () => new Date(),
  skewSeconds = 60,
  maxTokenAgeSeconds = 3600,
}: CiTokenVerifierDeps) {
  /**
   * The candidates' key sources: trusts sharing one pasted JWKS (compared by content) form one
   * group, trusts without one share the issuer's published keys. The signature is checked once per
   * group, and a trust survives only if its own group's key verified it — so a pasted JWKS pins
   * that trust to exactly those keys even when another trust for the same issuer fetches.
   * When no group verifies, the first group's reason is the one reported.
   */
  function keyGroups(candidates: TrustRelationship[]) {
    const groups = new Map<string, { jwks: JsonWebKeySet | undefined; trusts: TrustRelationship[] }>();
    for (const t of candidates) {
      const id = t.staticJwks ? `static:${JSON.stringify(t.staticJwks)}` : "fetch";
      const g = groups.get(id);
      if (g) g.trusts.push(t);
      else groups.set(id, { jwks: t.staticJwks, trusts: [t] });
    }
    return [...groups.values()];
  }

  return {
    async verify(rawJwt: string, trusts: TrustRelationship[]): Promise<VerifiedCiToken> {
      const jws = peekJws(rawJwt);
      const iss = jws.payload.iss;
      if (typeof iss !== "string" || iss.length === 0) reject("oidc: iss missing");
      const candidates = trusts.filter((t) => t.issuer === iss);
      if (candidates.length === 0) reject("oidc: no trust relationship for issuer");

      const verified: TrustRelationship[] = [];
      let firstError: unknown;
      for (const group of keyGroups(candidates)) {
        try {
          await verifyJws(rawJwt, (kid) => keys.getKey(iss, kid, group.jwks));
          verified.push(...group.trusts);
        } catch (e) {
          firstError ??= e;
        }
      }
      if (verified.length === 0) throw firstError;

      // From here on the claims are the issuer's word.
      const claims = jws.payload;
      const t = now().getTime() / 1000;
      const exp = numericDate(claims, "exp", true)!;
      if (t > exp + skewSeconds) reject("oidc: token expired");
      const nbf = numericDate(claims, "nbf", false);
      if (nbf !== undefined && nbf > t + skewSeconds) reject("oidc: token not yet valid");
      const iat = numericDate(claims, "iat", true)!;
      if (iat > t + skewSeconds) reject("oidc: iat in the future");
      if (t - iat > maxTokenAgeSeconds + skewSeconds) reject("oidc: token too old");

      if (claims.aud === undefined) reject("oidc: aud missing");
      const forAudience = verified.filter((tr) => audienceMatches(tr, claims.aud));
      if (forAudience.length === 0) reject("oidc: audience not allowed");
      const matched = forAudience.filter((tr) => claimsMatch(tr, claims));
      if (matched.length === 0) reject("oidc: no trust relationship matches");

      return { claims, matched, expiresAt: new Date(exp * 1000) };
    },
  };
}
