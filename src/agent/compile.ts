/**
 * @module agent/compile
 * An agent's policy document plus what the agent knows locally (resolved hostnames, the names
 * wildcards matched, Docker bridges, DNS resolvers, the appliance's addresses) → the Compiled
 * form that render.ts turns into sets and rules.
 */
import type { Compiled, Jump, PortGroup } from "./render.ts";
import { parseScope } from "../wire/egress/scopes.ts";
import type { AgentPolicy } from "../wire/egress/policy.ts";
import { familyOf, parsePorts, parseTarget, wildcardMatches } from "../wire/egress/targets.ts";

export interface LocalFacts {
  /** Addresses of a pinned hostname (current and within grace). */
  addressesOf(name: string): string[];
  /** Names learned by the pinning responder (for wildcards). */
  learnedNames: string[];
  /** docker:NAME → its bridge interface (null when the network does not exist (yet)). */
  bridgeOf(network: string): string | null;
  /** The bridges of every Docker network the agent knows of (docker:NAME scopes: any other
   * `br-…` bridge is new and filtered until looked up). */
  knownBridges?: string[];
  /** Always allowed: the appliance's resolved addresses. */
  alwaysAllow: string[];
  /** The DNS resolvers: allowed for DNS (53/udp, 53/tcp) only. */
  dnsServers?: string[];
  nflogGroup: number;
}

/** Hostnames the policy needs resolved (rules and the appliance's own names). */
export function hostnamesOf(p: AgentPolicy, learned: string[] = []): string[] {
  const names = new Set<string>();
  for (const r of p.rules) {
    const t = parseTarget(r.target);
    if (typeof t === "string") continue;
    if (t.kind === "host") names.add(t.name);
    if (t.kind === "wildcard") for (const n of learned) if (wildcardMatches(t.suffix, n)) names.add(n);
  }
  for (const h of p.always_allow_hosts) if (!familyOf(h)) names.add(h.toLowerCase());
  return [...names];
}

export function scopeJumps(scopes: string[], bridgeOf: (n: string) => string | null): Jump[] {
  const out: Jump[] = [];
  if (namedDockerScopes(scopes)) out.push({ kind: "new-networks" });
  for (const raw of scopes) {
    const s = parseScope(raw);
    if (typeof s === "string") continue;
    if (s.kind === "host") out.push({ kind: "host" });
    else if (s.kind === "uid") out.push({ kind: "uid", uid: s.uid });
    else if (s.kind === "bridge") out.push({ kind: "iface", iface: s.iface });
    else if (s.kind === "subnet") out.push({ kind: "subnet", cidr: s.cidr, family: s.family });
    else if (s.kind === "docker") {
      // Every user-defined network's bridge is br-<id>: `docker:*` covers networks created later too.
      const iface = s.network === "*" ? "br-+" : bridgeOf(s.network);
      if (iface) out.push({ kind: "iface", iface });
    }
  }
  return out;
}

/** docker:NAME scopes without docker:* (which covers every bridge already): they need the new-network chain. */
function namedDockerScopes(scopes: string[]): boolean {
  const docker = scopes.map(parseScope).filter((s) => typeof s !== "string" && s.kind === "docker") as {
    network: string;
  }[];
  return docker.length > 0 && docker.every((s) => s.network !== "*");
}

export function compile(p: AgentPolicy, facts: LocalFacts, scopesOverride?: string[]): Compiled {
  const groups = new Map<string, PortGroup>();
  const group = (ports: string | null) => {
    const key = ports ?? "";
    let g = groups.get(key);
    if (!g) {
      const parsed = ports ? parsePorts(ports) : null;
      g = { ports: typeof parsed === "string" ? null : parsed, allow: { 4: [], 6: [] }, deny: { 4: [], 6: [] } };
      groups.set(key, g);
    }
    return g;
  };
  group(null); // group 0 is always "every port"
  for (const r of p.rules) {
    const t = parseTarget(r.target);
    if (typeof t === "string") continue;
    const g = group(r.ports);
    const into = r.action === "allow" ? g.allow : g.deny;
    const add = (a: string) => {
      const f = familyOf(a);
      if (f) into[f].push(a.includes("/") ? a : `${a}/${f === 4 ? 32 : 128}`);
    };
    if (t.kind === "cidr") add(t.cidr);
    else if (t.kind === "host") facts.addressesOf(t.name).forEach(add);
    else for (const n of facts.learnedNames) if (wildcardMatches(t.suffix, n)) facts.addressesOf(n).forEach(add);
  }
  const dns: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  for (const a of facts.dnsServers ?? []) {
    const t = parseTarget(a);
    if (typeof t !== "string" && t.kind === "cidr") dns[t.family].push(t.cidr);
  }
  const always: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  for (const a of [...p.always_allow, ...facts.alwaysAllow]) {
    const t = parseTarget(a);
    if (typeof t !== "string" && t.kind === "cidr") always[t.family].push(t.cidr);
  }
  for (const h of p.always_allow_hosts)
    for (const a of familyOf(h) ? [h] : facts.addressesOf(h.toLowerCase())) {
      const f = familyOf(a);
      if (f) always[f].push(`${a}/${f === 4 ? 32 : 128}`);
    }
  const scopes = scopesOverride ?? p.scopes;
  return {
    mode: p.mode,
    defaultAction: p.default_action,
    groups: [...groups.values()],
    always,
    dns,
    knownBridges: namedDockerScopes(scopes)
      ? [...new Set(facts.knownBridges ?? [])].filter((b) => b.startsWith("br-")).sort()
      : null,
    jumps: scopeJumps(scopes, facts.bridgeOf),
    nflogGroup: facts.nflogGroup,
  };
}
