/**
 * @module auth/oidc/url
 * Which issuer and JWKS URLs we are willing to fetch keys from, judged from the text alone (when
 * a trust is created, and before any request): https:// — plain http:// only for an issuer the
 * operator allows (`oidc.allow_internal`), since keys fetched in the clear could be swapped on the
 * path — no credentials, and for an address literal, an address we may connect to. Names are
 * checked again, by the addresses they resolve to, when fetched (auth/oidc/fetch.ts).
 */
import { isIP } from "node:net";
import { destinationProblem, NO_INTERNAL, type InternalAllowance } from "./address.ts";

/**
 * Returns why `raw` is not an acceptable issuer / jwks_uri, or null when it is. An issuer (per
 * OpenID Connect Discovery) has no query or fragment; neither may carry credentials.
 */
export function urlProblem(
  raw: string,
  what: "issuer" | "jwks_uri",
  allow: InternalAllowance = NO_INTERNAL,
): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return `${what} is not a valid URL`;
  }
  const https = "https:// (http:// only for issuers the operator allows with oidc.allow_internal)";
  if (u.protocol !== "https:" && u.protocol !== "http:") return `${what} must use ${https}`;
  if (u.username || u.password) return `${what} must not contain credentials`;
  if (what === "issuer" && (u.search || u.hash || raw.includes("?") || raw.includes("#"))) {
    return `${what} must not have a query or fragment`;
  }
  // URL has already normalized IPv4 shorthand ("127.1", "0x7f000001") and wraps IPv6 in brackets.
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host)) {
    const problem = destinationProblem(u, host, allow);
    if (problem) return `${what} ${problem}`;
  } else if (u.protocol === "http:" && !allow.origins.has(u.origin)) {
    return `${what} must use ${https}`;
  }
  return null;
}
