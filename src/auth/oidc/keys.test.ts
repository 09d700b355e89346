/**
 * @module auth/oidc/keys.test
 * Key lookup against a real loopback issuer (discovery + JWKS over HTTP): caching, the refetch
 * rate limit under a spray of unknown kids, rotation after the interval, TTL expiry, one shared
 * in-flight fetch, pasted static JWKS (no network at all), and refused URLs and documents.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { oidcKeysFactory, type FetchFn } from "./keys.ts";
import { rejectionReason, startTestIssuer, type TestIssuer } from "./test-issuer.ts";

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

/** The real fetch, counting every call, so tests can assert "no network". */
function countingFetch() {
  const calls: string[] = [];
  const f: FetchFn = (url, init) => {
    calls.push(url);
    return fetch(url, init);
  };
  return { fetch: f, calls };
}

function resetCounts() {
  idp.requests.discovery = 0;
  idp.requests.jwks = 0;
}

describe("oidcKeys with discovery", () => {
  test("finds a key by kid via discovery, then serves it from cache", async () => {
    resetCounts();
    const keys = oidcKeysFactory({ ...clock() });
    const [rsa, ec] = idp.published();
    expect(await keys.getKey(idp.issuer, rsa!.kid)).toMatchObject({ kty: "RSA", kid: rsa!.kid });
    expect(await keys.getKey(idp.issuer, ec!.kid)).toMatchObject({ kty: "EC", kid: ec!.kid });
    expect(idp.requests).toEqual({ discovery: 1, jwks: 1 });
  });

  test("a spray of unknown kids refetches at most once per interval", async () => {
    resetCounts();
    const c = clock();
    const keys = oidcKeysFactory({ now: c.now, minRefetchIntervalMs: 60_000 });
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
    const keys = oidcKeysFactory({ now: c.now });
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
    const keys = oidcKeysFactory({ now: c.now, cacheTtlMs: 600_000 });
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
    const keys = oidcKeysFactory({ ...clock() });
    const kids = idp.published().map((k) => k.kid);
    const found = await Promise.all([...kids, ...kids, ...kids].map((kid) => keys.getKey(idp.issuer, kid)));
    expect(found.map((k) => k.kid)).toEqual([...kids, ...kids, ...kids]);
    expect(idp.requests).toEqual({ discovery: 1, jwks: 1 });
  });

  test("a discovery document naming another issuer is refused", async () => {
    idp.overrides.discoveryIssuer = "https://token.actions.githubusercontent.com";
    try {
      const keys = oidcKeysFactory({ ...clock() });
      expect(await rejectionReason(() => keys.getKey(idp.issuer, idp.published()[0]!.kid))).toBe("oidc: discovery issuer mismatch");
    } finally {
      delete idp.overrides.discoveryIssuer;
    }
  });

  test("a jwks_uri that is plain http off loopback is refused", async () => {
    idp.overrides.jwksUri = "http://keys.example.com/jwks";
    try {
      const keys = oidcKeysFactory({ ...clock() });
      expect(await rejectionReason(() => keys.getKey(idp.issuer, idp.published()[0]!.kid))).toBe(
        "oidc: jwks_uri must use https:// (http:// only for loopback hosts)",
      );
    } finally {
      delete idp.overrides.jwksUri;
    }
  });

  test("a failing issuer is not retried within the interval", async () => {
    const c = clock();
    const missing = `${idp.issuer}/nowhere`;
    const { fetch, calls } = countingFetch();
    const keys = oidcKeysFactory({ now: c.now, fetch });
    expect(await rejectionReason(() => keys.getKey(missing, "k"))).toBe("oidc: discovery fetch failed: HTTP 404");
    expect(await rejectionReason(() => keys.getKey(missing, "k"))).toBe("oidc: issuer keys unavailable, retry later");
    expect(calls.length).toBe(1);
    c.advance(60_000);
    expect(await rejectionReason(() => keys.getKey(missing, "k"))).toBe("oidc: discovery fetch failed: HTTP 404");
    expect(calls.length).toBe(2);
  });

  test("unreachable issuer, non-JSON and oversized documents are refused", async () => {
    const unreachable = oidcKeysFactory({ ...clock(), timeoutMs: 500 });
    expect(await rejectionReason(() => unreachable.getKey("http://127.0.0.1:1", "k"))).toBe("oidc: discovery fetch failed");

    const serve = (body: string) => oidcKeysFactory({ ...clock(), fetch: async () => new Response(body) });
    expect(await rejectionReason(() => serve("<html>").getKey("https://idp.example.com", "k"))).toBe("oidc: discovery document is not JSON");
    expect(await rejectionReason(() => serve("[]").getKey("https://idp.example.com", "k"))).toBe("oidc: discovery document is not a JSON object");
    expect(await rejectionReason(() => serve(" ".repeat(300_000)).getKey("https://idp.example.com", "k"))).toBe("oidc: discovery document too large");
  });

  test("redirects are not followed (they could leave https or the issuer's host)", async () => {
    const redirecting = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => Response.redirect(`${idp.issuer}/.well-known/openid-configuration`, 302) });
    try {
      const keys = oidcKeysFactory({ ...clock() });
      expect(await rejectionReason(() => keys.getKey(`http://127.0.0.1:${redirecting.port}`, "k"))).toBe("oidc: discovery fetch failed");
    } finally {
      await redirecting.stop(true);
    }
  });

  test("the request times out (AbortSignal.timeout)", async () => {
    const slow = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => {}) });
    try {
      const keys = oidcKeysFactory({ ...clock(), timeoutMs: 100 });
      const started = performance.now();
      expect(await rejectionReason(() => keys.getKey(`http://127.0.0.1:${slow.port}`, "k"))).toBe("oidc: discovery fetch failed");
      expect(performance.now() - started).toBeLessThan(1_000);
    } finally {
      await slow.stop(true);
    }
  });
});

describe("oidcKeys URL rules", () => {
  test("http:// issuers are refused unless loopback, without any request", async () => {
    const { fetch, calls } = countingFetch();
    const keys = oidcKeysFactory({ ...clock(), fetch });
    for (const issuer of ["http://token.actions.githubusercontent.com", "http://10.0.0.1", "http://127.0.0.1.nip.io", "ftp://idp.example.com", "not a url"]) {
      const r = await rejectionReason(() => keys.getKey(issuer, "k"));
      expect(r.startsWith("oidc: issuer ")).toBe(true);
    }
    expect(await rejectionReason(() => keys.getKey("https://user:pw@idp.example.com", "k"))).toBe("oidc: issuer must not contain credentials");
    expect(await rejectionReason(() => keys.getKey("https://idp.example.com?x=1", "k"))).toBe("oidc: issuer must not have a query or fragment");
    expect(calls).toEqual([]);
  });

  test("loopback http:// issuers are allowed: 127.0.0.0/8, ::1, localhost", async () => {
    const { isLoopbackHost } = await import("./url.ts");
    for (const h of ["127.0.0.1", "127.1.2.3", "[::1]", "localhost"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["128.0.0.1", "localhost.example.com", "[::2]", "10.0.0.1", "127.0.0.1.nip.io"]) expect(isLoopbackHost(h)).toBe(false);
  });
});

describe("oidcKeys with a static JWKS", () => {
  test("looks the kid up in the pasted JWKS only and never fetches", async () => {
    const { fetch, calls } = countingFetch();
    const keys = oidcKeysFactory({ ...clock(), fetch });
    const jwks = idp.jwks();
    const kid = jwks.keys[0]!.kid!;
    expect(await keys.getKey("https://offline-idp.example.com", kid, jwks)).toMatchObject({ kid });
    expect(await rejectionReason(() => keys.getKey("https://offline-idp.example.com", "other", jwks))).toBe("oidc: unknown key id in static JWKS");
    expect(calls).toEqual([]);
  });

  test("ignores keys published for encryption", async () => {
    const keys = oidcKeysFactory({ ...clock() });
    const jwks = { keys: idp.jwks().keys.map((k) => ({ ...k, use: "enc" })) };
    expect(await rejectionReason(() => keys.getKey(idp.issuer, jwks.keys[0]!.kid!, jwks))).toBe("oidc: unknown key id in static JWKS");
  });
});
