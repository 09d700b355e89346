/**
 * @module auth/oidc/keys.test
 * Key lookup against a real loopback issuer (discovery + JWKS over HTTP): caching, the refetch
 * rate limit under a spray of unknown kids, rotation after the interval, TTL expiry, one shared
 * in-flight fetch, pasted static JWKS (no network at all), and refused URLs and documents.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseAllowInternal } from "./address.ts";
import { pinnedGetFactory, type DocumentGet } from "./fetch.ts";
import { oidcKeysFactory } from "./keys.ts";
import { rejectionReason, startTestIssuer, type TestIssuer } from "../../../test/support/oidc-issuer.ts";

let idp: TestIssuer;
beforeAll(async () => {
  idp = await startTestIssuer();
});
afterAll(async () => {
  await idp.stop();
});

function clock(start = Date.UTC(2030, 0, 1)) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => void (t += ms) };
}

/** The test issuers listen on loopback: the operator allows it here (oidc.allow_internal). */
const LOOPBACK = parseAllowInternal("127.0.0.0/8");

/** The real pinned requests, counting every call, so tests can assert "no network". */
function countingFetch() {
  const calls: string[] = [];
  // The default timeout: these tests are about answers, and a loaded machine is slow to give them.
  const real = pinnedGetFactory({ allowInternal: LOOPBACK });
  const f: DocumentGet = (url, what) => {
    calls.push(url);
    return real(url, what);
  };
  return { get: f, calls };
}

function resetCounts() {
  idp.requests.discovery = 0;
  idp.requests.jwks = 0;
}

describe("oidcKeys with discovery", () => {
  test("finds a key by kid via discovery, then serves it from cache", async () => {
    resetCounts();
    const keys = oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK });
    const [rsa, ec] = idp.published();
    expect(await keys.getKey(idp.issuer, rsa!.kid)).toMatchObject({ kty: "RSA", kid: rsa!.kid });
    expect(await keys.getKey(idp.issuer, ec!.kid)).toMatchObject({ kty: "EC", kid: ec!.kid });
    expect(idp.requests).toEqual({ discovery: 1, jwks: 1 });
  });

  test("a spray of unknown kids refetches at most once per interval", async () => {
    resetCounts();
    const c = clock();
    const keys = oidcKeysFactory({ now: c.now, minRefetchIntervalMs: 60_000, allowInternal: LOOPBACK });
    await keys.getKey(idp.issuer, idp.published()[0]!.kid);
    expect(idp.requests.jwks).toBe(1);
    expect(await rejectionReason(() => keys.getKey(idp.issuer, "random-1"))).toBe("oidc: unknown key id");
    expect(idp.requests.jwks).toBe(1); // within the interval of the first fetch
    c.advance(60_000);
    expect(await rejectionReason(() => keys.getKey(idp.issuer, "random-2"))).toBe("oidc: unknown key id");
    expect(idp.requests.jwks).toBe(2); // one refetch after the interval...
    for (let i = 3; i < 50; i++) {
      expect(await rejectionReason(() => keys.getKey(idp.issuer, `random-${i}`))).toBe("oidc: unknown key id");
    }
    expect(idp.requests.jwks).toBe(2); // ...and none for the rest of the spray
    expect(idp.requests.discovery).toBe(2);
  });

  test("key rotation: a new kid is found once the interval has passed", async () => {
    const c = clock();
    const keys = oidcKeysFactory({ now: c.now, allowInternal: LOOPBACK });
    const old = idp.published().find((k) => k.alg === "ES256")!;
    await keys.getKey(idp.issuer, old.kid);
    const fresh = await idp.rotate({ alg: "ES256", dropOld: true });
    c.advance(1_000);
    expect(await rejectionReason(() => keys.getKey(idp.issuer, fresh.kid))).toBe("oidc: unknown key id");
    c.advance(60_000);
    expect(await keys.getKey(idp.issuer, fresh.kid)).toMatchObject({ kid: fresh.kid, kty: "EC" });
    // The dropped key is gone from the refreshed cache.
    c.advance(60_000);
    expect(await rejectionReason(() => keys.getKey(idp.issuer, old.kid))).toBe("oidc: unknown key id");
  });

  test("cached keys expire after cacheTtlMs and are fetched again", async () => {
    resetCounts();
    const c = clock();
    const keys = oidcKeysFactory({ now: c.now, cacheTtlMs: 600_000, allowInternal: LOOPBACK });
    const kid = idp.published()[0]!.kid;
    await keys.getKey(idp.issuer, kid);
    c.advance(599_000);
    await keys.getKey(idp.issuer, kid);
    expect(idp.requests.jwks).toBe(1);
    c.advance(2_000);
    await keys.getKey(idp.issuer, kid);
    expect(idp.requests.jwks).toBe(2);
  });

  test("concurrent lookups for one issuer share one in-flight fetch", async () => {
    resetCounts();
    const keys = oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK });
    const kids = idp.published().map((k) => k.kid);
    const found = await Promise.all([...kids, ...kids, ...kids].map((kid) => keys.getKey(idp.issuer, kid)));
    expect(found.map((k) => k.kid)).toEqual([...kids, ...kids, ...kids]);
    expect(idp.requests).toEqual({ discovery: 1, jwks: 1 });
  });

  test("a discovery document naming another issuer is refused", async () => {
    idp.overrides.discoveryIssuer = "https://token.actions.githubusercontent.com";
    try {
      const keys = oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK });
      expect(await rejectionReason(() => keys.getKey(idp.issuer, idp.published()[0]!.kid))).toBe(
        "oidc: discovery issuer mismatch",
      );
    } finally {
      delete idp.overrides.discoveryIssuer;
    }
  });

  test("a jwks_uri that is plain http, or off the issuer's origin, is refused without fetching it", async () => {
    const keys = () => oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK });
    try {
      idp.overrides.jwksUri = "http://keys.example.com/jwks";
      expect(await rejectionReason(() => keys().getKey(idp.issuer, idp.published()[0]!.kid))).toBe(
        "oidc: jwks_uri must use https:// (http:// only for issuers the operator allows with oidc.allow_internal)",
      );
      resetCounts();
      idp.overrides.jwksUri = `http://127.0.0.2:${new URL(idp.issuer).port}/.well-known/jwks`; // allowed address, other origin
      expect(await rejectionReason(() => keys().getKey(idp.issuer, idp.published()[0]!.kid))).toBe(
        "oidc: jwks_uri is not on the issuer's origin",
      );
      expect(idp.requests.jwks).toBe(0);
    } finally {
      delete idp.overrides.jwksUri;
    }
  });

  test("a failing issuer is not retried within the interval", async () => {
    const c = clock();
    const missing = `${idp.issuer}/nowhere`;
    const { get, calls } = countingFetch();
    const keys = oidcKeysFactory({ now: c.now, get, allowInternal: LOOPBACK });
    expect(await rejectionReason(() => keys.getKey(missing, "k"))).toBe("oidc: discovery fetch failed: HTTP 404");
    expect(await rejectionReason(() => keys.getKey(missing, "k"))).toBe("oidc: issuer keys unavailable, retry later");
    expect(calls.length).toBe(1);
    c.advance(60_000);
    expect(await rejectionReason(() => keys.getKey(missing, "k"))).toBe("oidc: discovery fetch failed: HTTP 404");
    expect(calls.length).toBe(2);
  });

  test("unreachable issuer, non-JSON and oversized documents are refused", async () => {
    const unreachable = oidcKeysFactory({ ...clock(), timeoutMs: 500, allowInternal: LOOPBACK });
    expect(await rejectionReason(() => unreachable.getKey("http://127.0.0.1:1", "k"))).toBe(
      "oidc: discovery fetch failed",
    );

    const serve = (body: string | null) => oidcKeysFactory({ ...clock(), get: async () => ({ status: 200, body }) });
    expect(await rejectionReason(() => serve("<html>").getKey("https://idp.example.com", "k"))).toBe(
      "oidc: discovery document is not JSON",
    );
    expect(await rejectionReason(() => serve("[]").getKey("https://idp.example.com", "k"))).toBe(
      "oidc: discovery document is not a JSON object",
    );
    expect(await rejectionReason(() => serve(null).getKey("https://idp.example.com", "k"))).toBe(
      "oidc: discovery document too large",
    );
    const big = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(" ".repeat(300_000)) });
    try {
      expect(
        await rejectionReason(() =>
          oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK }).getKey(`http://127.0.0.1:${big.port}`, "k"),
        ),
      ).toBe("oidc: discovery document too large");
    } finally {
      await big.stop(true);
    }
  });

  test("redirects are not followed (they could leave https, the issuer's origin or the checked address)", async () => {
    const redirecting = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => Response.redirect(`${idp.issuer}/.well-known/openid-configuration`, 302),
    });
    try {
      const keys = oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK });
      expect(await rejectionReason(() => keys.getKey(`http://127.0.0.1:${redirecting.port}`, "k"))).toBe(
        "oidc: discovery fetch failed: redirects are not followed (HTTP 302)",
      );
    } finally {
      await redirecting.stop(true);
    }
  });

  test("the request times out (AbortSignal.timeout)", async () => {
    const slow = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => {}) });
    try {
      const keys = oidcKeysFactory({ ...clock(), timeoutMs: 100, allowInternal: LOOPBACK });
      const started = performance.now();
      expect(await rejectionReason(() => keys.getKey(`http://127.0.0.1:${slow.port}`, "k"))).toBe(
        "oidc: discovery fetch failed",
      );
      // Well under the 5 s default, so the 100 ms asked for is what ended it (with room for a loaded machine).
      expect(performance.now() - started).toBeLessThan(4_000);
    } finally {
      await slow.stop(true);
    }
  });
});

describe("oidcKeys URL rules", () => {
  test("http:// issuers are refused unless the operator allows them, and so is every internal address literal, without any request", async () => {
    const { get, calls } = countingFetch();
    const keys = oidcKeysFactory({ ...clock(), get });
    for (const issuer of [
      "http://token.actions.githubusercontent.com",
      "http://10.0.0.1",
      "http://127.0.0.1.nip.io",
      "ftp://idp.example.com",
      "not a url",
      "http://127.1:8080",
      "http://0x7f000001",
      "https://127.0.0.1",
      "https://[::1]",
      "https://[::ffff:127.0.0.1]",
      "https://169.254.1.1",
      "https://0.0.0.0",
      "https://100.64.0.1",
      "https://[fd00::1]",
    ]) {
      const r = await rejectionReason(() => keys.getKey(issuer, "k"));
      expect(r.startsWith("oidc: issuer ")).toBe(true);
    }
    expect(await rejectionReason(() => keys.getKey("https://127.1", "k"))).toBe(
      "oidc: issuer address 127.0.0.1 is loopback; the operator may allow it with oidc.allow_internal",
    );
    expect(await rejectionReason(() => keys.getKey("https://user:pw@idp.example.com", "k"))).toBe(
      "oidc: issuer must not contain credentials",
    );
    expect(await rejectionReason(() => keys.getKey("https://idp.example.com?x=1", "k"))).toBe(
      "oidc: issuer must not have a query or fragment",
    );
    expect(calls).toEqual([]);
  });

  test("a loopback issuer is refused by default, even by a name that resolves there; allowed by origin or range", async () => {
    const port = new URL(idp.issuer).port;
    const byDefault = oidcKeysFactory({ ...clock() });
    expect(await rejectionReason(() => byDefault.getKey(`https://localhost:${port}`, "k"))).toBe(
      "oidc: discovery address 127.0.0.1 is loopback; the operator may allow it with oidc.allow_internal",
    );
    expect(await rejectionReason(() => byDefault.getKey(idp.issuer, "k"))).toStartWith(
      "oidc: issuer address 127.0.0.1 is loopback",
    );
    const kid = idp.published()[0]!.kid;
    expect(
      await oidcKeysFactory({ ...clock(), allowInternal: parseAllowInternal(`http://127.0.0.1:${port}`) }).getKey(
        idp.issuer,
        kid,
      ),
    ).toMatchObject({ kid });
    expect(
      await oidcKeysFactory({ ...clock(), allowInternal: parseAllowInternal("127.0.0.0/8") }).getKey(idp.issuer, kid),
    ).toMatchObject({ kid });
    // An allowed origin is that origin only: another port on the same address is not allowed.
    expect(
      await rejectionReason(() =>
        oidcKeysFactory({ ...clock(), allowInternal: parseAllowInternal("http://127.0.0.1:1") }).getKey(
          idp.issuer,
          kid,
        ),
      ),
    ).toStartWith("oidc: issuer address 127.0.0.1 is loopback");
  });
});

describe("oidcKeys with a static JWKS", () => {
  test("looks the kid up in the pasted JWKS only and never fetches", async () => {
    const { get, calls } = countingFetch();
    const keys = oidcKeysFactory({ ...clock(), get, allowInternal: LOOPBACK });
    const jwks = idp.jwks();
    const kid = jwks.keys[0]!.kid!;
    expect(await keys.getKey("https://offline-idp.example.com", kid, jwks)).toMatchObject({ kid });
    expect(await rejectionReason(() => keys.getKey("https://offline-idp.example.com", "other", jwks))).toBe(
      "oidc: unknown key id in static JWKS",
    );
    expect(calls).toEqual([]);
  });

  test("ignores keys published for encryption", async () => {
    const keys = oidcKeysFactory({ ...clock(), allowInternal: LOOPBACK });
    const jwks = { keys: idp.jwks().keys.map((k) => ({ ...k, use: "enc" })) };
    expect(await rejectionReason(() => keys.getKey(idp.issuer, jwks.keys[0]!.kid!, jwks))).toBe(
      "oidc: unknown key id in static JWKS",
    );
  });
});
