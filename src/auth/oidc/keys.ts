/**
 * @module auth/oidc/keys
 * Finds the public key that signed a CI token: from a JWKS pasted into the trust relationship
 * (air-gapped sites; never fetches), or from the issuer via OpenID discovery
 * (`<issuer>/.well-known/openid-configuration` → `jwks_uri`). Fetched keys are cached per issuer;
 * an unknown kid triggers a refetch (key rotation) at most once per minRefetchIntervalMs per
 * issuer, so a flood of tokens with random kids cannot make us hammer the issuer. Concurrent
 * lookups for one issuer share a single in-flight fetch. Failures reject like any bad token.
 * Documents come over connections pinned to checked addresses (auth/oidc/fetch.ts), and the
 * jwks_uri must be on the issuer's own origin: a discovery document cannot send us elsewhere.
 */
import { NO_INTERNAL, type InternalAllowance } from "./address.ts";
import { pinnedGetFactory, type DocumentGet } from "./fetch.ts";
import type { JsonWebKeySet, Jwk } from "./jwt.ts";
import { reject } from "./reject.ts";
import { urlProblem } from "./url.ts";

export interface OidcKeysDeps {
  /** Issuers the operator allows on internal addresses (oidc.allow_internal). */
  allowInternal?: InternalAllowance;
  /** Extra trust roots (PEM) for issuers' TLS (oidc.ca_file). */
  ca?: string;
  /** Default: pinned requests under allowInternal, ca, timeoutMs and maxDocumentBytes. */
  get?: DocumentGet;
  now?: () => Date;
  /** At most one JWKS fetch per issuer within this interval, whatever the kids asked for. */
  minRefetchIntervalMs?: number;
  /** Fetched keys are trusted this long, then fetched again on the next use. */
  cacheTtlMs?: number;
  /** Per request (discovery, then JWKS), body included. */
  timeoutMs?: number;
  /** Discovery documents and JWKS are a few KiB; anything far bigger is refused unread. */
  maxDocumentBytes?: number;
}

export interface OidcKeys {
  getKey(issuer: string, kid: string, staticJwks?: JsonWebKeySet): Promise<Jwk>;
}

interface IssuerEntry {
  keys: Jwk[] | null;
  fetchedAt: number;
  /** Start of the last fetch, successful or not: the rate limit counts attempts. */
  lastAttemptAt: number | null;
  inflight: Promise<Jwk[]> | null;
}

/** Keys usable for signatures: a key published for encryption is ignored. */
function findKey(keys: readonly Jwk[], kid: string): Jwk | undefined {
  return keys.find((k) => k.kid === kid && (k.use === undefined || k.use === "sig"));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function oidcKeysFactory({
  allowInternal = NO_INTERNAL,
  ca,
  get,
  now = () => new Date(),
  minRefetchIntervalMs = 60_000,
  cacheTtlMs = 3_600_000,
  timeoutMs = 5000,
  maxDocumentBytes = 256 * 1024,
}: OidcKeysDeps = {}): OidcKeys {
  // Bounded by the configured trust relationships: verify only asks for issuers a trust names.
  const entries = new Map<string, IssuerEntry>();

  const getDocument =
    get ?? pinnedGetFactory({ allowInternal, timeoutMs, maxBytes: maxDocumentBytes, ...(ca ? { ca } : {}) });

  async function getJson(url: string, what: "discovery" | "jwks"): Promise<Record<string, unknown>> {
    const res = await getDocument(url, what);
    if (res.status < 200 || res.status > 299) reject(`oidc: ${what} fetch failed: HTTP ${res.status}`);
    const text = res.body;
    if (text === null) reject(`oidc: ${what} document too large`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      reject(`oidc: ${what} document is not JSON`);
    }
    if (!isObject(doc)) reject(`oidc: ${what} document is not a JSON object`);
    return doc;
  }

  async function fetchKeys(issuer: string): Promise<Jwk[]> {
    const base = issuer.endsWith("/") ? issuer.slice(0, -1) : issuer;
    const discovery = await getJson(`${base}/.well-known/openid-configuration`, "discovery");
    // OpenID Connect Discovery §4.3: a document naming another issuer must not be used.
    if (discovery.issuer !== issuer) reject("oidc: discovery issuer mismatch");
    const jwksUri = discovery.jwks_uri;
    if (typeof jwksUri !== "string") reject("oidc: discovery document has no jwks_uri");
    const problem = urlProblem(jwksUri, "jwks_uri", allowInternal);
    if (problem) reject(`oidc: ${problem}`);
    if (new URL(jwksUri).origin !== new URL(issuer).origin) reject("oidc: jwks_uri is not on the issuer's origin");
    const jwks = await getJson(jwksUri, "jwks");
    if (!Array.isArray(jwks.keys)) reject("oidc: jwks document has no keys");
    return (jwks.keys as unknown[]).filter(isObject) as Jwk[];
  }

  return {
    async getKey(issuer, kid, staticJwks) {
      if (staticJwks) {
        const key = Array.isArray(staticJwks.keys) ? findKey(staticJwks.keys, kid) : undefined;
        if (!key) reject("oidc: unknown key id in static JWKS");
        return key;
      }
      const problem = urlProblem(issuer, "issuer", allowInternal);
      if (problem) reject(`oidc: ${problem}`);

      let entry = entries.get(issuer);
      if (!entry) {
        entry = { keys: null, fetchedAt: 0, lastAttemptAt: null, inflight: null };
        entries.set(issuer, entry);
      }
      // Someone is already fetching this issuer's keys: use that result, whatever kid it was for.
      if (entry.inflight) {
        const key = findKey(await entry.inflight, kid);
        if (!key) reject("oidc: unknown key id");
        return key;
      }

      const t = now().getTime();
      const fresh = entry.keys !== null && t - entry.fetchedAt < cacheTtlMs;
      if (fresh) {
        const key = findKey(entry.keys!, kid);
        if (key) return key;
      }
      if (entry.lastAttemptAt !== null && t - entry.lastAttemptAt < minRefetchIntervalMs) {
        // Rate limited: an unknown kid stays unknown; stale or never-fetched keys stay unavailable.
        reject(fresh ? "oidc: unknown key id" : "oidc: issuer keys unavailable, retry later");
      }

      entry.lastAttemptAt = t;
      const e = entry;
      const inflight = fetchKeys(issuer)
        .then((keys) => {
          e.keys = keys;
          e.fetchedAt = now().getTime();
          return keys;
        })
        .finally(() => {
          e.inflight = null;
        });
      entry.inflight = inflight;
      const key = findKey(await inflight, kid);
      if (!key) reject("oidc: unknown key id");
      return key;
    },
  };
}
