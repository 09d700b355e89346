/**
 * @module agent/render
 * Pure functions from a compiled policy to what the kernel gets: the contents of each ipset and
 * the text `iptables-restore --noflush` / `ip6tables-restore --noflush` receive for Slipway's
 * own chain. Nothing here runs a program, so the rule order is unit-tested exactly.
 *
 * Chain order: loopback; always-allowed (appliance, builders, operator lists —
 * never deniable, so runners cannot cut themselves off the appliance); the DNS resolvers, for
 * DNS only (53/udp, 53/tcp: a deny rule for a resolver's address holds on every other port); deny
 * sets; conntrack ESTABLISHED,RELATED (after the denies, so a new deny also stops existing
 * flows); allow sets; the default. Allowed traffic RETURNs to the calling chain rather than
 * ACCEPTing, so other software's later rules (Docker's own, a firewall manager's) still apply.
 *
 * docker:NAME scopes fail closed: besides the jump from NAME's bridge, a "new network" chain is
 * jumped to from every `br-…` bridge; it lets through the bridges known when the policy was
 * compiled and sends any other (a network created since, e.g. NAME removed and re-created) into
 * the policy, until the agent has looked the new bridge up.
 */
import type { Mode } from "../wire/egress/policy.ts";
import type { Family } from "../wire/egress/targets.ts";

/** Addresses per family. */
export interface AddrSets {
  4: string[];
  6: string[];
}

export interface PortGroup {
  /** null: every port. */
  ports: [number, number][] | null;
  allow: AddrSets;
  deny: AddrSets;
}

/** Where the chain is jumped to from. */
export type Jump =
  | { kind: "host" }
  | { kind: "uid"; uid: number }
  | { kind: "iface"; iface: string }
  | { kind: "subnet"; cidr: string; family: Family }
  /** Every `br-…` bridge into the new-network chain (docker:NAME scopes). */
  | { kind: "new-networks" };

export interface Compiled {
  mode: Mode;
  defaultAction: "allow" | "deny";
  groups: PortGroup[];
  always: AddrSets;
  /** DNS resolvers: allowed for 53/udp and 53/tcp only. */
  dns: AddrSets;
  /** Bridges known to be some other network (docker:NAME scopes); null: no new-network chain. */
  knownBridges: string[] | null;
  jumps: Jump[];
  nflogGroup: number;
}

/** Names of one ruleset instance: the chain and the prefix of its sets. */
export interface Names {
  chain: string;
  /** Where bridges not yet looked up go (docker:NAME scopes fail closed). */
  newNetworks: string;
  setPrefix: string;
}

export function namesFor(instance = ""): Names {
  if (!/^[a-z0-9]{0,8}$/.test(instance))
    throw new Error(`egress instance name '${instance}' must be up to 8 lowercase letters or digits`);
  const suffix = instance ? `_${instance.toUpperCase()}` : "";
  return { chain: `SLIPWAY_EGRESS${suffix}`, newNetworks: `SLIPWAY_NEWNET${suffix}`, setPrefix: `slw${instance}` };
}

export const setName = (n: Names, kind: "a" | "d", group: number, family: Family) =>
  `${n.setPrefix}_${kind}${group}_${family}`;
export const alwaysSet = (n: Names, family: Family) => `${n.setPrefix}_always_${family}`;
export const dnsSet = (n: Names, family: Family) => `${n.setPrefix}_dns_${family}`;

/** Every set a compiled policy needs, with its members (always the same names for the same shape). */
export function renderSets(c: Compiled, n: Names): Map<string, { family: Family; members: string[] }> {
  const out = new Map<string, { family: Family; members: string[] }>();
  for (const f of [4, 6] as const) {
    out.set(alwaysSet(n, f), { family: f, members: c.always[f] });
    out.set(dnsSet(n, f), { family: f, members: c.dns[f] });
    c.groups.forEach((g, i) => {
      out.set(setName(n, "a", i, f), { family: f, members: g.allow[f] });
      out.set(setName(n, "d", i, f), { family: f, members: g.deny[f] });
    });
  }
  return out;
}

function portMatches(ports: [number, number][] | null): string[] {
  if (!ports) return [""];
  const list = ports.map(([a, b]) => (a === b ? `${a}` : `${a}:${b}`)).join(",");
  return [`-p tcp -m multiport --dports ${list} `, `-p udp -m multiport --dports ${list} `];
}

/** The actions for a denied packet: log it (new flows only), then reject (enforce) or let it pass (monitor). */
function denyActions(c: Compiled, family: Family, chain: string, match: string): string[] {
  const log = `-A ${chain} ${match}-m conntrack --ctstate NEW -j NFLOG --nflog-group ${c.nflogGroup} --nflog-prefix "${c.mode === "monitor" ? "slw-monitor" : "slw-drop"}" --nflog-threshold 1`;
  if (c.mode === "monitor") return [log, `-A ${chain} ${match}-j RETURN`];
  const unreachable = family === 4 ? "icmp-port-unreachable" : "icmp6-port-unreachable";
  return [
    log,
    `-A ${chain} ${match}-p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${chain} ${match}-j REJECT --reject-with ${unreachable}`,
  ];
}

/** The chain for one family, as `iptables-restore --noflush` input (declaring the chain flushes only it). */
export function renderChain(c: Compiled, n: Names, family: Family): string {
  const ch = n.chain;
  const lines = ["*filter", `:${ch} - [0:0]`, `-A ${ch} -o lo -j RETURN`];
  if (family === 6) {
    // Neighbour discovery: without it no IPv6 address on the link is reachable at all.
    for (const t of ["router-solicitation", "neighbour-solicitation", "neighbour-advertisement"])
      lines.push(`-A ${ch} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j RETURN`);
  }
  lines.push(`-A ${ch} -m set --match-set ${alwaysSet(n, family)} dst -j RETURN`);
  for (const p of ["udp", "tcp"])
    lines.push(`-A ${ch} -p ${p} -m set --match-set ${dnsSet(n, family)} dst -m ${p} --dport 53 -j RETURN`);
  c.groups.forEach((g, i) => {
    if (g.deny[family].length === 0) return;
    for (const pm of portMatches(g.ports))
      lines.push(...denyActions(c, family, ch, `-m set --match-set ${setName(n, "d", i, family)} dst ${pm}`));
  });
  lines.push(`-A ${ch} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
  c.groups.forEach((g, i) => {
    if (g.allow[family].length === 0) return;
    for (const pm of portMatches(g.ports))
      lines.push(`-A ${ch} -m set --match-set ${setName(n, "a", i, family)} dst ${pm}-j RETURN`);
  });
  if (c.defaultAction === "deny") lines.push(...denyActions(c, family, ch, ""));
  if (c.knownBridges) {
    // Declared in the same transaction, so it is rewritten whole together with the chain.
    lines.splice(2, 0, `:${n.newNetworks} - [0:0]`);
    for (const b of c.knownBridges) lines.push(`-A ${n.newNetworks} -i ${b} -j RETURN`);
    lines.push(`-A ${n.newNetworks} -j ${ch}`);
  }
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** The same allow/deny entries as one rule each (no ipsets): only for the bench's comparison. */
export function renderChainOneRuleEach(c: Compiled, n: Names, family: Family): string {
  const ch = n.chain;
  const lines = ["*filter", `:${ch} - [0:0]`, `-A ${ch} -o lo -j RETURN`];
  for (const g of c.groups)
    for (const a of g.deny[family])
      for (const pm of portMatches(g.ports)) lines.push(...denyActions(c, family, ch, `-d ${a} ${pm}`));
  lines.push(`-A ${ch} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
  for (const g of c.groups)
    for (const a of g.allow[family])
      for (const pm of portMatches(g.ports)) lines.push(`-A ${ch} -d ${a} ${pm}-j RETURN`);
  if (c.defaultAction === "deny") lines.push(...denyActions(c, family, ch, ""));
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** Where a jump lives, and its rule text as iptables-save prints it (without `-A CHAIN`). */
export function jumpRule(j: Jump, n: Names, family: Family): { chain: "OUTPUT" | "DOCKER-USER"; spec: string } | null {
  switch (j.kind) {
    case "host":
      return { chain: "OUTPUT", spec: `-j ${n.chain}` };
    case "uid":
      return { chain: "OUTPUT", spec: `-m owner --uid-owner ${j.uid} -j ${n.chain}` };
    case "iface":
      return { chain: "DOCKER-USER", spec: `-i ${j.iface} ! -o ${j.iface} -j ${n.chain}` };
    case "subnet":
      return j.family === family ? { chain: "DOCKER-USER", spec: `-s ${j.cidr} -j ${n.chain}` } : null;
    case "new-networks":
      return { chain: "DOCKER-USER", spec: `-i br-+ ! -o br-+ -j ${n.newNetworks}` };
  }
}
