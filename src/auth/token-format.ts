/**
 * @module auth/token-format
 * The format of API credentials (stored by auth/api-tokens): `slw_<kind>_<secret>` with a kind
 * letter so secret scanners (and people) can tell them apart, 192 bits of randomness, and only
 * SHA-256 of the whole string stored. A token is looked up by its hash, which is also the
 * constant-time answer to "compare the secret".
 */

/** `agent`: an egress agent on one runner host, bound to one organization (egress/service.ts). */
export type TokenKind = "user" | "org" | "project" | "oidc" | "build" | "agent";

export const TOKEN_PREFIX: Record<TokenKind, string> = {
  user: "slw_u_",
  org: "slw_o_",
  project: "slw_p_",
  oidc: "slw_x_",
  build: "slw_b_",
  agent: "slw_a_",
};

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_CHARS = 33; // 33 × log2(62) ≈ 196 bits

/** A new token string. Rejection sampling keeps every character uniform. */
export function generateToken(kind: TokenKind): string {
  let out = TOKEN_PREFIX[kind];
  while (out.length < TOKEN_PREFIX[kind].length + SECRET_CHARS) {
    for (const b of crypto.getRandomValues(new Uint8Array(48))) {
      if (b < 248 && out.length < TOKEN_PREFIX[kind].length + SECRET_CHARS) out += ALPHABET[b % 62];
    }
  }
  return out;
}

export function hashToken(token: string): Uint8Array {
  return new Bun.CryptoHasher("sha256").update(token).digest() as Uint8Array;
}

/** The kind a token string claims by its prefix, or null when it is not a Slipway token. */
export function tokenKind(token: string): TokenKind | null {
  const m = /^slw_([a-z])_[A-Za-z0-9]{33}$/.exec(token);
  if (!m) return null;
  const kind = (Object.keys(TOKEN_PREFIX) as TokenKind[]).find((k) => TOKEN_PREFIX[k] === `slw_${m[1]}_`);
  return kind ?? null;
}
