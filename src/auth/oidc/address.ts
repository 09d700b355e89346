/**
 * @module auth/oidc/address
 * Which addresses the appliance may fetch an issuer's keys from. Trust relationships are chosen
 * by organization owners, and discovery runs before any signature check, so an issuer URL must
 * not become a way to reach what only the appliance can reach: loopback, private networks,
 * link-local (cloud metadata), CGNAT, and the IPv6 forms that embed such an IPv4 address. The
 * operator allows internal issuers explicitly (GitHub Enterprise Server on a private network) by
 * origin or by address range: `oidc.allow_internal`.
 */
import { isIP } from "node:net";
import { allowEntryProblem } from "../../config/values.ts";

export { allowEntryProblem };

interface Range {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

/** An address as a number, IPv4-mapped IPv6 (::ffff:a.b.c.d) folded to its IPv4 address. */
export function parseAddress(text: string): { family: 4 | 6; value: bigint } | null {
  const addr = text.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const family = isIP(addr);
  if (family === 4) return { family: 4, value: addr.split(".").reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n) };
  if (family !== 6) return null;
  let a = addr.toLowerCase();
  if (a.includes(".")) {
    const i = a.lastIndexOf(":");
    const v4 = a
      .slice(i + 1)
      .split(".")
      .map(Number);
    a = `${a.slice(0, i + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = a.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const words = [...h, ...Array(a.includes("::") ? 8 - h.length - t.length : 0).fill("0"), ...t];
  const value = words.reduce((n, w) => (n << 16n) | BigInt(parseInt(w, 16)), 0n);
  if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
  return { family: 6, value };
}

function range(cidr: string): Range {
  const [addr, bits] = cidr.split("/") as [string, string];
  const p = parseAddress(addr)!;
  // A mapped ::ffff:0:0/96 entry folds to IPv4 0.0.0.0/0: every IPv4 address.
  const family = addr.includes(":") ? 6 : 4;
  return family === 6 && p.family === 4
    ? { family: 4, base: p.value, bits: Number(bits) - 96 }
    : { family: p.family, base: p.value, bits: Number(bits) };
}

function inRange(r: Range, a: { family: 4 | 6; value: bigint }): boolean {
  if (r.family !== a.family) return false;
  const width = a.family === 4 ? 32n : 128n;
  const shift = width - BigInt(r.bits);
  return a.value >> shift === r.base >> shift;
}

/** IANA special-purpose ranges that are not globally reachable, by what they are. */
const SPECIAL: [string, string][] = [
  ["0.0.0.0/8", "unspecified"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared (CGNAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "reserved"],
  ["192.0.2.0/24", "reserved"],
  ["192.88.99.0/24", "reserved"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "reserved"],
  ["198.51.100.0/24", "reserved"],
  ["203.0.113.0/24", "reserved"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["::/96", "reserved"], // IPv4-compatible (deprecated)
  ["64:ff9b:1::/48", "private"], // local-use NAT64
  ["100::/64", "reserved"],
  ["2001::/23", "reserved"],
  ["2001:db8::/32", "reserved"],
  ["fc00::/7", "private"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "link-local"],
  ["ff00::/8", "multicast"],
].map(([c, k]) => [c!, k!]);
const SPECIAL_RANGES = SPECIAL.map(([c, kind]) => ({ r: range(c), kind }));

/**
 * What kind of non-public address `text` is ("loopback", "private", ...), or null for a public
 * one. IPv6 that carries an IPv4 address (mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged
 * by that IPv4 address.
 */
export function addressKind(text: string): string | null {
  const a = parseAddress(text);
  if (!a) return "invalid";
  if (a.family === 6) {
    if (a.value >> 32n === 0x64ff9b0000000000000000n) return addressKind(v4Text(a.value & 0xffffffffn));
    if (a.value >> 112n === 0x2002n) return addressKind(v4Text((a.value >> 80n) & 0xffffffffn));
  }
  if (a.family === 4 && a.value === 0xffffffffn) return "broadcast";
  return SPECIAL_RANGES.find((s) => inRange(s.r, a))?.kind ?? null;
}

function v4Text(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 255n)).join(".");
}

/** Never a destination, whatever the operator allows: connecting there means this machine or everyone. */
const NEVER = new Set(["unspecified", "multicast", "broadcast", "invalid"]);

/** The operator's `oidc.allow_internal`: issuer origins, and address ranges, that may be internal. */
export interface InternalAllowance {
  origins: ReadonlySet<string>;
  ranges: readonly Range[];
}

export const NO_INTERNAL: InternalAllowance = { origins: new Set(), ranges: [] };

/** Parses a validated `oidc.allow_internal` list (comma-separated origins and CIDRs). */
export function parseAllowInternal(list: string | readonly string[]): InternalAllowance {
  const entries = (typeof list === "string" ? list.split(",") : list).map((e) => e.trim()).filter(Boolean);
  const origins = new Set<string>();
  const ranges: Range[] = [];
  for (const e of entries) {
    const problem = allowEntryProblem(e);
    if (problem) throw new Error(problem);
    if (e.includes("://")) origins.add(new URL(e).origin);
    else ranges.push(range(e));
  }
  return { origins, ranges };
}

/**
 * Why `url` may not be fetched from `address` (one it resolved to), or null when it may:
 * internal addresses only when the operator allows the URL's origin or the address's range;
 * http:// likewise only then (keys fetched in the clear could be swapped on the path).
 */
export function destinationProblem(url: URL, address: string, allow: InternalAllowance): string | null {
  const kind = addressKind(address);
  if (kind && NEVER.has(kind)) return `address ${address} is ${kind}`;
  const parsed = parseAddress(address)!;
  const allowed = allow.origins.has(url.origin) || allow.ranges.some((r) => inRange(r, parsed));
  if (kind && !allowed) return `address ${address} is ${kind}; the operator may allow it with oidc.allow_internal`;
  if (url.protocol === "http:" && !allowed)
    return "http:// is allowed only for issuers the operator allows with oidc.allow_internal; use https://";
  return null;
}
