/**
 * @module auth/oidc/fetch
 * Fetches an issuer's discovery document and JWKS over a connection pinned to an address that
 * was checked: the host name is resolved once, every address it resolves to must be acceptable
 * (auth/oidc/address.ts), and the request connects to one of them (node:http(s) with a
 * `lookup` that hands back only that address) while the Host header, TLS SNI and certificate
 * check keep the name. So a name cannot pass the check and then resolve elsewhere for the
 * connection (DNS rebinding). Redirects are never followed; bodies are bounded; one deadline
 * covers resolution, connection and body.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import { UnauthenticatedError } from "../../errors.ts";
import { destinationProblem, type InternalAllowance } from "./address.ts";
import { reject } from "./reject.ts";

export type DocumentKind = "discovery" | "jwks";
/** Resolves `url` to its status and body text; null body: larger than allowed. Rejects with a reason. */
export type DocumentGet = (url: string, what: DocumentKind) => Promise<{ status: number; body: string | null }>;
export type Resolve = (host: string) => Promise<{ address: string; family: number }[]>;

export interface PinnedGetDeps {
  allowInternal: InternalAllowance;
  /** Default: the system resolver (getaddrinfo: /etc/hosts, then DNS). */
  resolve?: Resolve;
  timeoutMs?: number;
  maxBytes?: number;
  /** Extra trust roots (PEM) for issuers' TLS certificates (a private CA), beside the public ones. */
  ca?: string;
}

const systemResolve: Resolve = (host) => dnsLookup(host, { all: true, verbatim: true });
const utf8 = new TextDecoder("utf-8", { fatal: true });

export function pinnedGetFactory({
  allowInternal,
  resolve = systemResolve,
  timeoutMs = 5000,
  maxBytes = 256 * 1024,
  ca,
}: PinnedGetDeps): DocumentGet {
  // Node's `ca` replaces the default roots: keep them, so public issuers still verify.
  const roots = ca ? [...rootCertificates, ca] : undefined;
  return async (raw, what) => {
    const url = new URL(raw);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const deadline = AbortSignal.timeout(timeoutMs);
    let addresses: { address: string; family: number }[];
    if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
    else {
      try {
        addresses = await Promise.race([
          resolve(host),
          new Promise<never>((_, no) => deadline.addEventListener("abort", () => no(new Error("timeout")))),
        ]);
      } catch {
        reject(`oidc: ${what} host does not resolve`);
      }
    }
    if (addresses.length === 0) reject(`oidc: ${what} host does not resolve`);
    // Every answer is checked, not only the one used: a mixed answer is an attack or a mistake.
    for (const a of addresses) {
      const problem = destinationProblem(url, a.address, allowInternal);
      if (problem) reject(`oidc: ${what} ${problem}`);
    }
    // IPv4 first: many hosts resolve AAAA records they have no route for.
    const pinned = addresses.find((a) => a.family === 4) ?? addresses[0]!;
    try {
      return await request(url, what, pinned, deadline);
    } catch (e) {
      if (e instanceof UnauthenticatedError) throw e;
      reject(`oidc: ${what} fetch failed`);
    }
  };

  function request(
    url: URL,
    what: DocumentKind,
    pinned: { address: string; family: number },
    deadline: AbortSignal,
  ): Promise<{ status: number; body: string | null }> {
    return new Promise((resolveBody, fail) => {
      const mod = url.protocol === "https:" ? https : http;
      const req = mod.request(
        url,
        {
          method: "GET",
          headers: { accept: "application/json" },
          signal: deadline,
          // The connection goes to the checked address, whatever the name resolves to by now.
          lookup: ((_name: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) =>
            options?.all
              ? cb(null, [{ address: pinned.address, family: pinned.family }])
              : cb(null, pinned.address, pinned.family)) as unknown as LookupFunction,
          ...(roots ? { ca: roots } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400) {
            res.destroy();
            // Following one could leave https, the issuer's origin or the checked address.
            const reason = `oidc: ${what} fetch failed: redirects are not followed (HTTP ${status})`;
            return fail(new UnauthenticatedError(reason, { reason }));
          }
          const declared = Number(res.headers["content-length"]);
          if (Number.isFinite(declared) && declared > maxBytes) {
            res.destroy();
            return resolveBody({ status, body: null });
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) {
              res.destroy();
              resolveBody({ status, body: null });
            } else chunks.push(chunk);
          });
          res.on("end", () => {
            try {
              resolveBody({ status, body: utf8.decode(Buffer.concat(chunks)) });
            } catch {
              fail(new Error("not UTF-8"));
            }
          });
          res.on("error", fail);
        },
      );
      req.on("error", fail);
      req.end();
    });
  }
}
