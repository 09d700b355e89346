/**
 * @module auth/oidc/url
 * Which issuer and JWKS URLs we are willing to fetch keys from. Keys fetched over plain HTTP could
 * be swapped by anyone on the path, so only https:// is accepted — except on loopback hosts
 * (127.0.0.0/8, ::1, localhost), where a local issuer and the tests run without TLS.
 */

export function isLoopbackHost(hostname: string): boolean {
  // URL has already normalized IPv4 shorthand ("127.1") and wraps IPv6 in brackets.
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Returns why `raw` is not an acceptable issuer / jwks_uri, or null when it is. An issuer (per
 * OpenID Connect Discovery) has no query or fragment; neither may carry credentials.
 */
export function urlProblem(raw: string, what: "issuer" | "jwks_uri"): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return `${what} is not a valid URL`;
  }
  if (u.protocol !== "https:" && !(u.protocol === "http:" && isLoopbackHost(u.hostname))) {
    return `${what} must use https:// (http:// only for loopback hosts)`;
  }
  if (u.username || u.password) return `${what} must not contain credentials`;
  if (what === "issuer" && (u.search || u.hash || raw.includes("?") || raw.includes("#"))) {
    return `${what} must not have a query or fragment`;
  }
  return null;
}
