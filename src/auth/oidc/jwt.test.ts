/**
 * @module auth/oidc/jwt.test
 * JWS decoding and verification (jose, under Slipway's header policy) without any network:
 * malformed tokens, refused algorithms (none, the HS256-with-the-RSA-public-key confusion, PS256),
 * missing kid, crit, tampering, key/algorithm disagreement, and the good RS256 / ES256 paths.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { UnauthenticatedError } from "../../errors.ts";
import { peekJws, verifyJws, type Jwk } from "./jwt.ts";
import { b64url, makeKey, rejectionReason, type TestKey } from "../../../test/support/oidc-issuer.ts";

let rsa: TestKey;
let ec: TestKey;
const enc = new TextEncoder();

async function signed(
  key: TestKey,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const input = `${b64url(JSON.stringify({ alg: key.alg, kid: key.kid, ...header }))}.${b64url(JSON.stringify(payload))}`;
  const params = key.alg === "RS256" ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: "SHA-256" };
  return `${input}.${b64url(new Uint8Array(await crypto.subtle.sign(params, key.privateKey, enc.encode(input))))}`;
}

const reasonOfParse = (raw: string) => rejectionReason(() => peekJws(raw));
const reasonOfVerify = (raw: string, jwk: Jwk) => rejectionReason(() => verifyJws(raw, async () => jwk));
const b64d = (part: string) => new Uint8Array(Buffer.from(part, "base64url"));

beforeAll(async () => {
  [rsa, ec] = await Promise.all([makeKey("RS256"), makeKey("ES256")]);
});

describe("peekJws", () => {
  test("reads header, payload and signature of a well-formed token", async () => {
    const jws = peekJws(await signed(rsa, {}, { iss: "x" }));
    expect(jws.alg).toBe("RS256");
    expect(jws.kid).toBe(rsa.kid);
    expect(jws.payload).toEqual({ iss: "x" });
  });

  test("malformed tokens each have their own reason", async () => {
    const h = b64url(JSON.stringify({ alg: "RS256", kid: "k" }));
    const p = b64url(JSON.stringify({ iss: "x" }));
    expect(await reasonOfParse("")).toBe("oidc: malformed token: empty");
    expect(await reasonOfParse(`${h}.${p}`)).toBe("oidc: malformed token: expected 3 parts");
    expect(await reasonOfParse(`${h}.${p}.c2ln.extra`)).toBe("oidc: malformed token: expected 3 parts");
    const header = "oidc: malformed token: header is not base64url JSON";
    const payload = "oidc: malformed token: payload is not base64url JSON";
    expect(await reasonOfParse(`${h}=.${p}.c2ln`)).toBe(header);
    expect(await reasonOfParse(`${h}.${p}+/.c2ln`)).toBe(payload);
    expect(await reasonOfParse(`${b64url("not json")}.${p}.c2ln`)).toBe(header);
    expect(await reasonOfParse(`${b64url("[1]")}.${p}.c2ln`)).toBe(header);
    expect(await reasonOfParse(`${h}.${b64url("nope{")}.c2ln`)).toBe(payload);
    expect(await reasonOfParse(`${h}.${b64url("null")}.c2ln`)).toBe(payload);
    expect(await reasonOfParse(`${h}.${b64url(new Uint8Array([0xff, 0xfe]))}.c2ln`)).toBe(payload);
    expect(await reasonOfParse(`${h}.${p}.`)).toBe("oidc: malformed token: signature missing");
    expect(await reasonOfParse(`${h}.${p}.${"A".repeat(20_000)}`)).toBe("oidc: malformed token: too large");
  });

  test("only RS256 and ES256 are allowed", async () => {
    const p = b64url(JSON.stringify({ iss: "x" }));
    for (const alg of ["none", "None", "HS256", "HS512", "PS256", "RS512", "ES384", "EdDSA"]) {
      expect(await reasonOfParse(`${b64url(JSON.stringify({ alg, kid: "k" }))}.${p}.`)).toBe(
        `oidc: algorithm ${alg} not allowed`,
      );
    }
    expect(await reasonOfParse(`${b64url(JSON.stringify({ kid: "k" }))}.${p}.c2ln`)).toBe(
      "oidc: algorithm undefined not allowed",
    );
    expect(await reasonOfParse(`${b64url(JSON.stringify({ alg: ["RS256"], kid: "k" }))}.${p}.c2ln`)).toBe(
      'oidc: algorithm ["RS256"] not allowed',
    );
  });

  test("attacker-chosen alg text is sanitized and truncated in the reason", async () => {
    const p = b64url(JSON.stringify({ iss: "x" }));
    const r = await reasonOfParse(`${b64url(JSON.stringify({ alg: `X\n${"y".repeat(100)}`, kid: "k" }))}.${p}.c2ln`);
    expect(r).toBe(`oidc: algorithm X?${"y".repeat(30)}... not allowed`);
  });

  test("kid is required and crit is refused", async () => {
    const p = b64url(JSON.stringify({ iss: "x" }));
    expect(await reasonOfParse(`${b64url(JSON.stringify({ alg: "RS256" }))}.${p}.c2ln`)).toBe("oidc: kid missing");
    expect(await reasonOfParse(`${b64url(JSON.stringify({ alg: "RS256", kid: "" }))}.${p}.c2ln`)).toBe(
      "oidc: kid missing",
    );
    expect(
      await reasonOfParse(`${b64url(JSON.stringify({ alg: "RS256", kid: "k", crit: ["b64"], b64: false }))}.${p}.c2ln`),
    ).toBe("oidc: crit header not supported");
  });

  test("errors are UnauthenticatedError and never contain the token", async () => {
    const raw = `${b64url(JSON.stringify({ alg: "HS256", kid: "k" }))}.${b64url(JSON.stringify({ secret: "s3cr3t" }))}.c2ln`;
    try {
      peekJws(raw);
      throw new Error("should have thrown");
    } catch (e) {
      expect(e).toBeInstanceOf(UnauthenticatedError);
      expect((e as Error).message).not.toContain(raw.split(".")[1]!);
    }
  });
});

describe("verifyJws", () => {
  test("RS256 and ES256 tokens verify with their keys", async () => {
    expect(await verifyJws(await signed(rsa, {}, { a: 1 }), async () => rsa.publicJwk)).toEqual({ a: 1 });
    expect(await verifyJws(await signed(ec, {}, { a: 1 }), async () => ec.publicJwk)).toEqual({ a: 1 });
  });

  test("a tampered payload no longer verifies", async () => {
    const [h, , s] = (await signed(rsa, {}, { repository: "acme/app" })).split(".");
    const forged = `${h}.${b64url(JSON.stringify({ repository: "evil/app" }))}.${s}`;
    expect(await reasonOfVerify(forged, rsa.publicJwk)).toBe("oidc: bad signature");
    const [eh, , es] = (await signed(ec, {}, { repository: "acme/app" })).split(".");
    expect(
      await reasonOfVerify(`${eh}.${b64url(JSON.stringify({ repository: "evil/app" }))}.${es}`, ec.publicJwk),
    ).toBe("oidc: bad signature");
  });

  test("a signature by another key of the same type does not verify", async () => {
    const other = await makeKey("ES256");
    expect(await reasonOfVerify(await signed(other, { kid: ec.kid }, { a: 1 }), ec.publicJwk)).toBe(
      "oidc: bad signature",
    );
  });

  test("an ES256 token can never be verified by an RSA key, nor RS256 by an EC key", async () => {
    const es = await signed(ec, { kid: rsa.kid }, { a: 1 });
    expect(await reasonOfVerify(es, rsa.publicJwk)).toBe("oidc: key type does not match algorithm");
    const { alg: _a, ...rsaNoAlg } = rsa.publicJwk;
    expect(await reasonOfVerify(es, rsaNoAlg)).toBe("oidc: key type does not match algorithm");
    // A key of the right type that declares another algorithm is refused too.
    expect(await reasonOfVerify(await signed(rsa, {}, { a: 1 }), { ...rsa.publicJwk, alg: "RS512" })).toBe(
      "oidc: key algorithm does not match token",
    );
    const { alg: _b, ...ecNoAlg } = ec.publicJwk;
    expect(await reasonOfVerify(await signed(rsa, {}, { a: 1 }), ecNoAlg)).toBe(
      "oidc: key type does not match algorithm",
    );
    expect(await reasonOfVerify(await signed(ec, {}, { a: 1 }), { ...ecNoAlg, crv: "P-384" })).toBe(
      "oidc: key type does not match algorithm",
    );
  });

  test("a key published for encryption is not used to verify", async () => {
    expect(await reasonOfVerify(await signed(rsa, {}, { a: 1 }), { ...rsa.publicJwk, use: "enc" })).toBe(
      "oidc: key is not a signing key",
    );
  });

  test("an ES256 signature must be raw r||s (64 bytes); DER or truncated is refused", async () => {
    const [h, p, s] = (await signed(ec, {}, { a: 1 })).split(".");
    const short = b64url(b64d(s!).slice(0, 63));
    expect(await reasonOfVerify(`${h}.${p}.${short}`, ec.publicJwk)).toBe("oidc: bad signature");
  });

  test("broken or weak RSA keys are refused", async () => {
    const token = await signed(rsa, {}, { a: 1 });
    expect(await reasonOfVerify(token, { ...rsa.publicJwk, n: rsa.publicJwk.n!.slice(0, 171) })).toBe(
      "oidc: invalid key",
    );
    expect(await reasonOfVerify(token, { ...rsa.publicJwk, e: undefined })).toBe("oidc: invalid key");
    const { alg: _a, ...ecNoAlg } = ec.publicJwk;
    expect(await reasonOfVerify(await signed(ec, {}, { a: 1 }), { ...ecNoAlg, x: "AAAA" })).toBe("oidc: invalid key");
  });
});

describe("the key resolver", () => {
  test("is asked for the header's kid, and its refusal is the token's reason", async () => {
    const asked: string[] = [];
    const token = await signed(rsa, {}, { a: 1 });
    const r = await rejectionReason(() =>
      verifyJws(token, async (kid) => {
        asked.push(kid);
        throw new UnauthenticatedError("oidc: unknown key id", { reason: "oidc: unknown key id" });
      }),
    );
    expect(r).toBe("oidc: unknown key id");
    expect(asked).toEqual([rsa.kid]);
  });

  test("is never asked for a refused algorithm", async () => {
    let asked = 0;
    const p = b64url(JSON.stringify({ iss: "x" }));
    expect(
      await rejectionReason(() =>
        verifyJws(
          `${b64url(JSON.stringify({ alg: "HS256", kid: "k" }))}.${p}.c2ln`,
          async () => (asked++, rsa.publicJwk),
        ),
      ),
    ).toBe("oidc: algorithm HS256 not allowed");
    expect(asked).toBe(0);
  });
});
