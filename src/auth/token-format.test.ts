/**
 * @module auth/token-format.test
 * Covers generateToken (prefix per kind, length, charset, uniqueness), tokenKind (parsing and
 * rejection of malformed strings) and hashToken (SHA-256 of the whole string, 32 bytes).
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { generateToken, hashToken, TOKEN_PREFIX, tokenKind, type TokenKind } from "./token-format.ts";

const KINDS: [TokenKind, string][] = [
  ["user", "slw_u_"],
  ["org", "slw_o_"],
  ["project", "slw_p_"],
  ["oidc", "slw_x_"],
  ["build", "slw_b_"],
];

describe("generateToken", () => {
  for (const [kind, prefix] of KINDS) {
    test(`${kind}: ${prefix} followed by 33 alphanumerics, and tokenKind reads it back`, () => {
      expect(TOKEN_PREFIX[kind]).toBe(prefix);
      const t = generateToken(kind);
      expect(t).toStartWith(prefix);
      expect(t.length).toBe(prefix.length + 33);
      expect(t.slice(prefix.length)).toMatch(/^[A-Za-z0-9]{33}$/);
      expect(tokenKind(t)).toBe(kind);
    });
  }

  test("1000 tokens are distinct and use the whole alphabet", () => {
    const tokens = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = generateToken("user");
      tokens.add(t);
      for (const c of t.slice(6)) chars.add(c);
    }
    expect(tokens.size).toBe(1000);
    // 33 000 uniform draws over 62 characters hit every one of them.
    expect(chars.size).toBe(62);
  });
});

describe("tokenKind", () => {
  test("rejects malformed strings", () => {
    const good = generateToken("user");
    const secret = good.slice(6);
    for (const bad of [
      "",
      "slw_u_",
      `${good}A`,
      good.slice(0, -1),
      `slw_z_${secret}`, // unknown kind letter
      `slw_U_${secret}`,
      `SLW_u_${secret}`,
      `slw_uu_${secret}`,
      `slw_u_${secret.slice(1)}-`,
      `slw_u_${secret.slice(1)}_`,
      ` ${good}`,
      `${good}\n`,
      `Bearer ${good}`,
      "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    ]) {
      expect(tokenKind(bad)).toBeNull();
    }
  });
});

describe("hashToken", () => {
  test("is the 32-byte SHA-256 of the whole token string", () => {
    const t = generateToken("org");
    const h = hashToken(t);
    expect(h.length).toBe(32);
    expect(Buffer.from(h).toString("hex")).toBe(createHash("sha256").update(t).digest("hex"));
    expect(Buffer.from(hashToken("abc")).toString("hex")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(Buffer.from(hashToken(generateToken("org"))).equals(Buffer.from(h))).toBe(false);
  });
});
