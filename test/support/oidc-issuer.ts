/**
 * @module test/support/oidc-issuer
 * Test helper (not a test file): a real OIDC issuer on loopback — discovery document and JWKS
 * served by Bun.serve on 127.0.0.1 — with RS256 (RSA 2048) and ES256 (P-256) keys made by
 * WebCrypto. Tests mint tokens shaped like GitHub Actions, CircleCI and Buildkite ones, rotate
 * keys, break the discovery document on purpose, and count requests to assert the rate limit.
 */
import { UnauthenticatedError } from "../../src/errors.ts";
import type { JsonWebKeySet, Jwk } from "../../src/auth/oidc/jwt.ts";

export type TestAlg = "RS256" | "ES256";

export interface TestKey {
  kid: string;
  alg: TestAlg;
  privateKey: CryptoKey;
  publicJwk: Jwk;
  /** The public key as PEM text — the "secret" an HS256 confusion attack signs with. */
  publicPem: string;
}

export interface MintOptions {
  /** The header's kid (default: the first published key of `alg`, else the first published key). */
  kid?: string;
  /** The header's alg (default: the signing key's). "none" leaves the signature empty; HS*
   * signs with `hmacSecret`. */
  alg?: string;
  /** The kid of the key that actually signs (default: `kid`); lets a header lie about its key. */
  signWith?: string;
  hmacSecret?: Uint8Array<ArrayBuffer>;
  /** Extra or overriding header members. */
  header?: Record<string, unknown>;
}

export interface TestIssuer {
  issuer: string;
  /** Requests served, by document. */
  requests: { discovery: number; jwks: number };
  /** Mutate to serve a misleading discovery document. */
  overrides: { discoveryIssuer?: string; jwksUri?: string };
  /** Every key ever made, published or not. */
  keys: TestKey[];
  published(): TestKey[];
  jwks(): JsonWebKeySet;
  key(kid: string): TestKey;
  mint(claims: Record<string, unknown>, options?: MintOptions): Promise<string>;
  /** Makes and publishes a new key; `dropOld` unpublishes every other key of the same alg. */
  rotate(options?: { alg?: TestAlg; dropOld?: boolean }): Promise<TestKey>;
  stop(): Promise<void>;
}

const enc = new TextEncoder();

export function b64url(data: Uint8Array | string): string {
  return Buffer.from(typeof data === "string" ? enc.encode(data) : data).toString("base64url");
}

let kidCounter = 0;

export async function makeKey(alg: TestAlg): Promise<TestKey> {
  const pair =
    alg === "RS256"
      ? await crypto.subtle.generateKey(
          {
            name: "RSASSA-PKCS1-v1_5",
            modulusLength: 2048,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: "SHA-256",
          },
          true,
          ["sign", "verify"],
        )
      : await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const kid = `${alg.toLowerCase()}-${++kidCounter}-${crypto.randomUUID().slice(0, 8)}`;
  const full = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as Jwk;
  const publicJwk: Jwk =
    alg === "RS256"
      ? { kty: "RSA", kid, use: "sig", alg, n: full.n, e: full.e }
      : { kty: "EC", kid, use: "sig", alg, crv: "P-256", x: full.x, y: full.y };
  const spki = Buffer.from(await crypto.subtle.exportKey("spki", pair.publicKey)).toString("base64");
  const publicPem = `-----BEGIN PUBLIC KEY-----\n${spki.match(/.{1,64}/g)!.join("\n")}\n-----END PUBLIC KEY-----\n`;
  return { kid, alg, privateKey: pair.privateKey, publicJwk, publicPem };
}

async function sign(
  alg: string,
  key: TestKey | undefined,
  input: string,
  hmacSecret?: Uint8Array<ArrayBuffer>,
): Promise<string> {
  if (alg === "none") return "";
  if (alg.startsWith("HS")) {
    if (!hmacSecret) throw new Error("oidc-issuer: HS* needs hmacSecret");
    const hash = `SHA-${alg.slice(2)}`;
    const k = await crypto.subtle.importKey("raw", hmacSecret, { name: "HMAC", hash }, false, ["sign"]);
    return b64url(new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(input))));
  }
  if (!key) throw new Error("oidc-issuer: no key to sign with");
  const params = key.alg === "RS256" ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: "SHA-256" };
  return b64url(new Uint8Array(await crypto.subtle.sign(params, key.privateKey, enc.encode(input))));
}

/** Starts an issuer at http://127.0.0.1:<port><path>; `path` lets it look like CircleCI's /org/<uuid>. */
export async function startTestIssuer({ path = "", algs = ["RS256", "ES256"] as TestAlg[] } = {}): Promise<TestIssuer> {
  const keys = await Promise.all(algs.map(makeKey));
  let publishedKids = keys.map((k) => k.kid);
  const requests = { discovery: 0, jwks: 0 };
  const overrides: TestIssuer["overrides"] = {};
  const published = () => keys.filter((k) => publishedKids.includes(k.kid));
  const jwks = (): JsonWebKeySet => ({ keys: published().map((k) => ({ ...k.publicJwk })) });

  let issuer = "";
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const p = new URL(req.url).pathname;
      if (p === `${path}/.well-known/openid-configuration`) {
        requests.discovery++;
        return Response.json({
          issuer: overrides.discoveryIssuer ?? issuer,
          jwks_uri: overrides.jwksUri ?? `${issuer}/.well-known/jwks`,
          subject_types_supported: ["public"],
          response_types_supported: ["id_token"],
          id_token_signing_alg_values_supported: algs,
        });
      }
      if (p === `${path}/.well-known/jwks`) {
        requests.jwks++;
        return Response.json(jwks());
      }
      return new Response("not found", { status: 404 });
    },
  });
  issuer = `http://127.0.0.1:${server.port}${path}`;

  const key = (kid: string) => {
    const k = keys.find((x) => x.kid === kid);
    if (!k) throw new Error(`test-issuer: no key ${kid}`);
    return k;
  };

  return {
    issuer,
    requests,
    overrides,
    keys,
    published,
    jwks,
    key,
    async mint(claims, o = {}) {
      const defaultKey = (o.alg && published().find((k) => k.alg === o.alg)) || published()[0];
      const kid = o.kid ?? defaultKey?.kid;
      const signer = o.signWith ? key(o.signWith) : keys.find((k) => k.kid === kid);
      const alg = o.alg ?? signer?.alg ?? "RS256";
      const header = { alg, typ: "JWT", kid, ...o.header };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      return `${input}.${await sign(alg, signer, input, o.hmacSecret)}`;
    },
    async rotate({ alg = "RS256", dropOld = false } = {}) {
      const k = await makeKey(alg);
      keys.push(k);
      if (dropOld) publishedKids = publishedKids.filter((kid) => key(kid).alg !== alg);
      publishedKids.push(k.kid);
      return k;
    },
    async stop() {
      await server.stop(true);
    },
  };
}

// ---- claims shaped like the real providers' -----------------------------------------------------

function times(nowSeconds: number, lifetime: number) {
  return { iat: nowSeconds, nbf: nowSeconds - 5, exp: nowSeconds + lifetime };
}

/** A GitHub Actions job token for acme/app on main (override anything). */
export function githubClaims(
  iss: string,
  nowSeconds: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    jti: crypto.randomUUID(),
    sub: "repo:acme/app:ref:refs/heads/main",
    aud: "https://slipway.example.com",
    ref: "refs/heads/main",
    sha: "9b2c0f5c1e6d4a8b7f3e2d1c0b9a8f7e6d5c4b3a",
    repository: "acme/app",
    repository_owner: "acme",
    repository_owner_id: "1000001",
    repository_id: "2000002",
    repository_visibility: "private",
    run_id: "7000000001",
    run_number: "42",
    run_attempt: "1",
    actor: "octocat",
    actor_id: "3000003",
    workflow: "build",
    event_name: "push",
    ref_type: "branch",
    job_workflow_ref: "acme/app/.github/workflows/build.yml@refs/heads/main",
    runner_environment: "github-hosted",
    iss,
    ...times(nowSeconds, 300),
    ...over,
  };
}

/** A CircleCI job token; the issuer pins the org, the audience defaults to the org id as CircleCI's does. */
export function circleciClaims(
  iss: string,
  ids: { organizationId: string; projectUuid: string },
  nowSeconds: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    iss,
    sub: `org/${ids.organizationId}/project/${ids.projectUuid}/user/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9`,
    aud: ids.organizationId,
    "oidc.circleci.com/project-id": ids.projectUuid,
    "oidc.circleci.com/context-ids": ["5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"],
    "oidc.circleci.com/vcs-origin": "github.com/acme/app",
    "oidc.circleci.com/vcs-ref": "refs/heads/main",
    ...times(nowSeconds, 3600),
    ...over,
  };
}

/** A Buildkite agent job token for pipeline acme/app. */
export function buildkiteClaims(
  iss: string,
  nowSeconds: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    iss,
    sub: "organization:acme:pipeline:app:ref:refs/heads/main:commit:9b2c0f5c1e6d4a8b7f3e2d1c0b9a8f7e6d5c4b3a:step:build",
    aud: "https://slipway.example.com",
    organization_slug: "acme",
    pipeline_slug: "app",
    build_number: 1234,
    build_branch: "main",
    build_commit: "9b2c0f5c1e6d4a8b7f3e2d1c0b9a8f7e6d5c4b3a",
    step_key: "build",
    job_id: "0189f3a2-7c1d-4b8e-9f6a-5d4c3b2a1f0e",
    agent_id: "0189f3a2-0000-4b8e-9f6a-5d4c3b2a1f0e",
    ...times(nowSeconds, 300),
    ...over,
  };
}

/** Runs `fn` and returns the reason of the UnauthenticatedError it must reject with. */
export async function rejectionReason(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof UnauthenticatedError) return e.message;
    throw e;
  }
  throw new Error("expected an UnauthenticatedError, but it resolved");
}
