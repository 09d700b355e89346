/**
 * @module wire/egress/targets
 * What an egress rule can name, and how a target is parsed and matched.
 *
 * A target is one of:
 * - an IPv4 or IPv6 address (`203.0.113.7`, `2001:db8::7`), kept as a /32 or /128; an
 *   IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, prefix /96 or longer) is its IPv4 address;
 * - a CIDR (`203.0.113.0/24`, `2001:db8::/48`), normalised to its network address;
 * - a hostname (`registry.example.com`), resolved by the agent to all its A and AAAA records;
 * - a wildcard `*.example.com`: every name strictly below example.com, at any depth
 *   (`a.example.com`, `a.b.example.com`) and NOT the apex `example.com` itself — add the apex as
 *   its own rule when it is wanted. Wildcards cannot be resolved ahead of time; the agent learns
 *   the names they match from the DNS questions its pinning responder answers (see README).
 *
 * Ports: optional list of ports and ranges (`443`, `8000-8100`), applied to TCP and UDP.
 *
 * Part of the egress wire contract: the server validates rules with it, the agent matches them.
 */
import { isIP } from "node:net";

export type Family = 4 | 6;
export type Target =
  | { kind: "cidr"; family: Family; cidr: string }
  | { kind: "host"; name: string }
  | { kind: "wildcard"; suffix: string };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function validHostname(name: string): boolean {
  if (name.length > 253) return false;
  const labels = name.split(".");
  return labels.length >= 1 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!);
}

/** Parses a target, or returns an explanation of what is wrong. */
export function parseTarget(raw: string): Target | string {
  const text = raw.trim().toLowerCase().replace(/\.$/, "");
  if (text === "" || text === "*")
    return "a target must be an address, a CIDR, a hostname or *.domain (use the default rule for '*')";
  if (text.startsWith("*.")) {
    const suffix = text.slice(2);
    if (!validHostname(suffix) || !suffix.includes("."))
      return `'${raw}' is not a valid wildcard: expected *.domain.tld`;
    return { kind: "wildcard", suffix };
  }
  if (text.includes("*")) return `'${raw}': a wildcard may only be a leading '*.' label`;
  const slash = text.indexOf("/");
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const family = isIP(addr);
  if (family === 4 || family === 6) {
    const max = family === 4 ? 32 : 128;
    const bits = slash >= 0 ? Number(text.slice(slash + 1)) : max;
    if (slash >= 0 && !/^\d{1,3}$/.test(text.slice(slash + 1))) return `'${raw}': the prefix length must be a number`;
    if (!Number.isInteger(bits) || bits < 0 || bits > max) return `'${raw}': the prefix length must be 0..${max}`;
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) never appears on the wire as such: the kernel
    // sees IPv4, so a rule for it in the IPv6 sets would do nothing. It means its IPv4 address.
    if (family === 6 && isV4Mapped(addr)) {
      if (bits < 96) return `'${raw}': an IPv4-mapped prefix must be /96 or longer (write the IPv4 CIDR instead)`;
      const w = v6Words(addr);
      const v4 = [w[6]! >> 8, w[6]! & 255, w[7]! >> 8, w[7]! & 255].join(".");
      return { kind: "cidr", family: 4, cidr: `${networkAddress(v4, 4, bits - 96)}/${bits - 96}` };
    }
    return { kind: "cidr", family, cidr: `${networkAddress(addr, family, bits)}/${bits}` };
  }
  if (slash >= 0) return `'${raw}' is not a valid CIDR`;
  if (!validHostname(text)) return `'${raw}' is not an address, CIDR, hostname or *.domain`;
  return { kind: "host", name: text };
}

/** The canonical text of a target (what is stored and shown). */
export function targetText(t: Target): string {
  return t.kind === "cidr" ? t.cidr : t.kind === "host" ? t.name : `*.${t.suffix}`;
}

/** Does `name` fall under the wildcard suffix? Strictly below: the apex does not match. */
export function wildcardMatches(suffix: string, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  return n.length > suffix.length + 1 && n.endsWith(`.${suffix}`);
}

/** Parses a ports list: "443", "80,443", "8000-8100". Returns [from, to] pairs or an error. */
export function parsePorts(raw: string | readonly string[]): [number, number][] | string {
  const parts = (typeof raw === "string" ? raw.split(",") : raw).map((p) => p.trim()).filter(Boolean);
  const out: [number, number][] = [];
  for (const p of parts) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(p);
    if (!m) return `'${p}' is not a port or a range (e.g. 443, 8000-8100)`;
    const a = Number(m[1]);
    const b = m[2] ? Number(m[2]) : a;
    if (a < 1 || b > 65535 || a > b) return `'${p}': ports are 1..65535, ranges low-high`;
    out.push([a, b]);
  }
  if (out.length > 15) return "at most 15 ports or ranges per rule";
  return out;
}

export function portsText(ports: [number, number][]): string {
  return ports.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(",");
}

// --- addresses ---

function v6Words(addr: string): number[] {
  let a = addr;
  if (a.includes(".")) {
    // embedded IPv4 (::ffff:1.2.3.4)
    const i = a.lastIndexOf(":");
    const v4 = a
      .slice(i + 1)
      .split(".")
      .map(Number);
    a = `${a.slice(0, i + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined ? (tail ? tail.split(":") : []) : [];
  const fill = a.includes("::") ? 8 - h.length - t.length : 0;
  return [...h, ...Array(fill).fill("0"), ...t].map((w) => parseInt(w, 16));
}

/** ::ffff:0:0/96, the IPv4-mapped range. */
function isV4Mapped(addr: string): boolean {
  const w = v6Words(addr);
  return w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff;
}

function networkAddress(addr: string, family: Family, bits: number): string {
  if (family === 4) {
    const n = addr.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const net = (n & mask) >>> 0;
    return [24, 16, 8, 0].map((s) => (net >>> s) & 255).join(".");
  }
  const words = v6Words(addr).map((w, i) => {
    const keep = Math.max(0, Math.min(16, bits - i * 16));
    return keep === 0 ? 0 : w & ((0xffff << (16 - keep)) & 0xffff);
  });
  return compressV6(words);
}

function compressV6(words: number[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** Is `addr` inside `cidr` (same family)? */
export function cidrContains(cidr: string, addr: string): boolean {
  const [net, b] = cidr.split("/");
  const fam = isIP(net!);
  if (fam !== isIP(addr) || fam === 0) return false;
  return networkAddress(addr, fam as Family, Number(b)) === networkAddress(net!, fam as Family, Number(b));
}

export function familyOf(addr: string): Family | null {
  const f = isIP(addr.split("/")[0]!);
  return f === 4 || f === 6 ? f : null;
}
