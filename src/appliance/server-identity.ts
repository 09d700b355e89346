/**
 * @module appliance/server-identity
 * The names the API's TLS certificate must carry: localhost, this host's name, its addresses,
 * and the public URL's host — everything a client might dial.
 */
import { hostname, networkInterfaces } from "node:os";
import { isIP } from "node:net";

export function serverNames(publicUrl: string): { dns: string[]; ip: string[] } {
  const dns = new Set<string>(["localhost"]);
  const ip = new Set<string>(["127.0.0.1", "::1"]);
  const host = hostname();
  if (host) dns.add(host.toLowerCase());
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      // Link-local addresses need a zone id to dial; certificates cannot name them usefully.
      if (a.family === "IPv6" && a.address.toLowerCase().startsWith("fe80")) continue;
      ip.add(a.address);
    }
  }
  const pub = new URL(publicUrl).hostname.replace(/^\[|\]$/g, "");
  if (isIP(pub)) ip.add(pub);
  else if (pub) dns.add(pub.toLowerCase());
  return { dns: [...dns], ip: [...ip] };
}

/** What clients are told to use when public_url is not configured. */
export function defaultPublicUrl(port: number, https: boolean): string {
  return `${https ? "https" : "http"}://${hostname() || "localhost"}:${port}`;
}
