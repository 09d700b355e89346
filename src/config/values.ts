/**
 * @module config/values
 * The grammars of setting values that name network places (`host:port` endpoints for
 * builders.network_mirrors, origins and CIDRs for oidc.allow_internal). They live with the
 * settings schema, which validates them at load, and the capabilities that use the values
 * import them from here: configuration sits below every capability.
 */
import { isIP } from "node:net";
import { parseTarget } from "../wire/egress/targets.ts";

export interface Endpoint {
  host: string;
  port: number;
}

/** Parses `host:port` / `[v6]:port` list entries; throws on the first bad one. */
export function parseEndpoints(list: string): Endpoint[] {
  return list
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      const e = parseEndpoint(x);
      if (!e) throw new Error(`'${x}' is not host:port`);
      return e;
    });
}

export function parseEndpoint(text: string): Endpoint | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  const host = (m[1] ?? m[2])!.toLowerCase();
  if (port < 1 || port > 65535) return null;
  if (m[1] && isIP(host) !== 6) return null;
  if (!m[1] && isIP(host) === 0 && typeof parseTarget(host) === "string") return null;
  return { host, port };
}

/** Why `entry` is not an origin (https://host[:port], http:// too) or a CIDR, or null. */
export function allowEntryProblem(entry: string): string | null {
  if (entry.includes("/") && !entry.includes("://")) {
    const [addr, bits, ...rest] = entry.split("/");
    const family = isIP(addr!);
    const max = family === 4 ? 32 : 128;
    if (rest.length || !family || !/^\d{1,3}$/.test(bits!) || Number(bits) > max)
      return `'${entry}' is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)`;
    return null;
  }
  try {
    const u = new URL(entry);
    if ((u.protocol !== "https:" && u.protocol !== "http:") || u.origin !== entry.replace(/\/$/, ""))
      return `'${entry}' is not an origin (scheme://host[:port], no path)`;
    return null;
  } catch {
    return `'${entry}' is neither an origin (https://ghe.example.com) nor a CIDR (10.0.0.0/8)`;
  }
}
