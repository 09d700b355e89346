/**
 * @module builders/network-policy
 * What a builder (and so every RUN step of every build) may reach, enforced on the host.
 *
 * Every builder network's bridge is named `<prefix><hash>` with a prefix of this appliance's own
 * (see bridgeName), so two rules per family catch all of them from the moment the bridge exists,
 * whatever network is created later: `-I INPUT 1 -i <prefix>+` (traffic to this host: every one
 * of its addresses, the bridge gateways included) and `-I DOCKER-USER 1 -i <prefix>+` (traffic
 * through it). The chains:
 *
 * - input (to this host): DNS to a configured resolver that is local, the builder registry port,
 *   configured mirrors; everything else is rejected (SSH, metrics, databases, ...).
 * - nat (PREROUTING): the API's port on this host leads builders to the registry-only listener,
 *   so an image named by the appliance's public host:port pushes and the API stays out of reach.
 * - forward (elsewhere): DNS (53/udp, 53/tcp) to the host's resolvers (Docker's embedded DNS
 *   forwards builders' queries from inside the builder's namespace), configured mirrors, the
 *   operator's allowed CIDRs; then link-local (169.254.0.0/16, fe80::/10: cloud metadata) and
 *   private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) are rejected; the rest
 *   RETURNs to the calling chain, so Docker's own rules still apply.
 *
 * Both families are written by one `iptables-restore --noflush` each (atomic per family); when
 * the second fails the first is taken out again, so the policy is in force for both or neither.
 * Other software's chains are never flushed; our jumps are deleted by their exact saved text.
 */
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { HostExec } from "../host/exec.ts";
import type { HealthCheck } from "../health/registry.ts";
import { renderIpsetRestore } from "../host/ipset.ts";
import { parseTarget, type Family } from "../wire/egress/targets.ts";
import { parseEndpoints, type Endpoint } from "../config/values.ts";

export { parseEndpoints, type Endpoint };

/** Reserved ranges builders may not reach unless the operator allows them. */
export const LINK_LOCAL: Record<Family, string[]> = { 4: ["169.254.0.0/16"], 6: ["fe80::/10"] };
export const PRIVATE: Record<Family, string[]> = {
  4: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "0.0.0.0/8"],
  6: ["fc00::/7"],
};

export interface BuilderNetworkPolicySettings {
  /** "off": builders reach whatever the host's routing and Docker allow (not recommended). */
  mode: "enforce" | "off";
  /** CIDRs builders may reach although they are private (builders.network_allow). */
  allow: string[];
  /** Package mirrors builders may reach although they are private or on this host (builders.network_mirrors). */
  mirrors: Endpoint[];
}

/** A list of CIDRs/addresses as normalised CIDRs per family; throws on anything else. */
export function parseCidrs(list: string[]): Record<Family, string[]> {
  const out: Record<Family, string[]> = { 4: [], 6: [] };
  for (const raw of list) {
    const t = parseTarget(raw);
    if (typeof t === "string" || t.kind !== "cidr") throw new Error(`'${raw}' is not an IP address or CIDR`);
    if (/^::ffff:/i.test(t.cidr)) throw new Error(`'${raw}': write IPv4-mapped addresses as IPv4`);
    out[t.family].push(t.cidr);
  }
  return out;
}

/** The names of this appliance's policy objects (one appliance per host is the rule, but tests run several). */
export interface PolicyNames {
  /** Bridge name prefix of every builder network (≤ 10 characters). */
  bridgePrefix: string;
  input: string;
  forward: string;
  /** nat table: the API port, for builders, leads to the registry-only listener. */
  nat: string;
  setPrefix: string;
}

export function policyNames(applianceShort: string): PolicyNames {
  const s = applianceShort
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "")
    .slice(-8);
  return {
    bridgePrefix: `sb${s}`,
    input: `SLWB_${s.toUpperCase()}_IN`,
    forward: `SLWB_${s.toUpperCase()}_FWD`,
    nat: `SLWB_${s.toUpperCase()}_NAT`,
    setPrefix: `slwb${s}`,
  };
}

/** The bridge interface of a builder network: the prefix and 5 characters of the network name's hash (15 at most, the kernel's limit). */
export function bridgeName(names: PolicyNames, networkName: string): string {
  const h = new Bun.CryptoHasher("sha256").update(networkName).digest("hex");
  return `${names.bridgePrefix}${BigInt(`0x${h.slice(0, 12)}`)
    .toString(36)
    .padStart(5, "0")
    .slice(-5)}`;
}

/** What the rules are made of, after names were resolved. */
export interface ResolvedPolicy {
  /** The port builders push to the appliance's registry on (on any address of this host). */
  registryPort: number | null;
  /** The API's port: builders connecting to it on this host are redirected to registryPort, so
   * an image named by the appliance's public host:port still pushes, and the API is not reached. */
  apiPort: number | null;
  resolvers: Record<Family, string[]>;
  mirrors: Record<Family, { addr: string; port: number }[]>;
  allow: Record<Family, string[]>;
}

const setOf = (n: PolicyNames, kind: "allow" | "deny" | "dns", f: Family) => `${n.setPrefix}_${kind}_${f}`;

export function renderPolicySets(
  p: ResolvedPolicy,
  n: PolicyNames,
): Map<string, { family: Family; members: string[] }> {
  const out = new Map<string, { family: Family; members: string[] }>();
  for (const f of [4, 6] as const) {
    out.set(setOf(n, "allow", f), { family: f, members: p.allow[f] });
    out.set(setOf(n, "deny", f), { family: f, members: [...LINK_LOCAL[f], ...PRIVATE[f]] });
    out.set(setOf(n, "dns", f), { family: f, members: p.resolvers[f] });
  }
  return out;
}

function reject(chain: string, family: Family, match = ""): string[] {
  const unreachable = family === 4 ? "icmp-port-unreachable" : "icmp6-port-unreachable";
  return [
    `-A ${chain} ${match}-p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${chain} ${match}-j REJECT --reject-with ${unreachable}`,
  ];
}

/** The chains' rules for one family, without the `*filter`/COMMIT frame (pure: unit-tested). */
export function renderPolicyChains(p: ResolvedPolicy, n: PolicyNames, family: Family): string[] {
  const dns = setOf(n, "dns", family);
  const lines = [`:${n.input} - [0:0]`, `:${n.forward} - [0:0]`];
  for (const ch of [n.input, n.forward]) {
    lines.push(
      `-A ${ch} -p udp -m set --match-set ${dns} dst -m udp --dport 53 -j RETURN`,
      `-A ${ch} -p tcp -m set --match-set ${dns} dst -m tcp --dport 53 -j RETURN`,
    );
    for (const m of p.mirrors[family])
      lines.push(`-A ${ch} -d ${m.addr}/${family === 4 ? 32 : 128} -p tcp -m tcp --dport ${m.port} -j RETURN`);
  }
  if (family === 6) {
    // Neighbour discovery towards the gateway: without it nothing on the link answers at all.
    for (const t of ["router-solicitation", "neighbour-solicitation", "neighbour-advertisement"])
      lines.push(`-A ${n.input} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j RETURN`);
  }
  if (p.registryPort) lines.push(`-A ${n.input} -p tcp -m tcp --dport ${p.registryPort} -j RETURN`);
  lines.push(...reject(n.input, family));
  lines.push(`-A ${n.forward} -m set --match-set ${setOf(n, "allow", family)} dst -j RETURN`);
  lines.push(...reject(n.forward, family, `-m set --match-set ${setOf(n, "deny", family)} dst `));
  return lines;
}

/** The nat table's chain (builders' API port → the registry listener), without its frame. */
export function renderPolicyNat(p: ResolvedPolicy, n: PolicyNames): string[] {
  const lines = [`:${n.nat} - [0:0]`];
  if (p.registryPort && p.apiPort && p.apiPort !== p.registryPort)
    lines.push(
      `-A ${n.nat} -p tcp -m tcp --dport ${p.apiPort} -m addrtype --dst-type LOCAL -j REDIRECT --to-ports ${p.registryPort}`,
    );
  return lines;
}

export const natJump = (n: PolicyNames) => `-A PREROUTING -i ${n.bridgePrefix}+ -j ${n.nat}`;

/**
 * Our jump rules as iptables-save prints them. Forwarded traffic is caught in DOCKER-USER where
 * Docker has it: Docker inserts each new network's ACCEPT rules at the top of FORWARD, above
 * anything of ours there, and keeps only DOCKER-USER's jump before them. A family Docker does not
 * manage (ip6tables off) has no Docker rules, and FORWARD's first place is ours.
 */
export function policyJumps(n: PolicyNames, dockerUser: boolean): string[] {
  return [
    `-A INPUT -i ${n.bridgePrefix}+ -j ${n.input}`,
    `-A ${dockerUser ? "DOCKER-USER" : "FORWARD"} -i ${n.bridgePrefix}+ -j ${n.forward}`,
  ];
}

/** The host's DNS resolvers (the ones Docker's embedded DNS forwards to), loopback ones left out:
 * Docker queries those from the host's own namespace, where this policy does not apply. */
export function hostResolvers(
  files = ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"],
): Record<Family, string[]> {
  const out: Record<Family, string[]> = { 4: [], 6: [] };
  for (const f of files) {
    let text = "";
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    for (const m of text.matchAll(/^\s*nameserver\s+(\S+)/gm)) {
      const addr = m[1]!.replace(/%.*$/, "");
      const fam = isIP(addr);
      if (fam === 0 || /^127\./.test(addr) || addr === "::1") continue;
      const cidr = `${addr}/${fam === 4 ? 32 : 128}`;
      if (!out[fam as Family].includes(cidr)) out[fam as Family].push(cidr);
    }
  }
  return out;
}

export class BuilderPolicyError extends Error {
  override name = "BuilderPolicyError";
}

export interface BuilderNetworkPolicyDeps {
  exec: HostExec;
  names: PolicyNames;
  settings: BuilderNetworkPolicySettings;
  /** Builders' registry port on this host (null: no registry). */
  registryPort: number | null;
  /** The API's port (redirected to the registry's for builders). */
  apiPort?: number | null;
  resolvers?: () => Record<Family, string[]>;
  resolve?: (host: string) => Promise<{ address: string; family: number }[]>;
}

export type PolicyState =
  | { state: "off" }
  | { state: "enforced"; since: string }
  | { state: "failed"; error: string }
  | { state: "absent" };

// A factory of short closures over the policy's state (what is in force, since when); its length is theirs.
export function builderNetworkPolicyFactory(deps: BuilderNetworkPolicyDeps) {
  const { exec, names } = deps;
  const resolve = deps.resolve ?? ((host: string) => lookup(host, { all: true }));
  let state: PolicyState = deps.settings.mode === "off" ? { state: "off" } : { state: "absent" };

  async function must(argv: string[], stdin?: string): Promise<string> {
    const r = await exec(argv, stdin === undefined ? {} : { stdin });
    if (r.code !== 0)
      throw new BuilderPolicyError(
        `${argv.join(" ")} failed (${r.code}): ${r.stderr.trim().split("\n").slice(0, 3).join("; ")}`,
      );
    return r.stdout;
  }

  async function resolved(): Promise<ResolvedPolicy> {
    const mirrors: ResolvedPolicy["mirrors"] = { 4: [], 6: [] };
    for (const m of deps.settings.mirrors) {
      const addrs = isIP(m.host)
        ? [{ address: m.host, family: isIP(m.host) }]
        : await resolve(m.host).catch((e) => {
            throw new BuilderPolicyError(
              `package mirror ${m.host}:${m.port} does not resolve: ${(e as Error).message}`,
            );
          });
      for (const a of addrs) mirrors[a.family as Family].push({ addr: a.address, port: m.port });
    }
    return {
      registryPort: deps.registryPort,
      apiPort: deps.apiPort ?? null,
      resolvers: (deps.resolvers ?? hostResolvers)(),
      mirrors,
      allow: parseCidrs(deps.settings.allow),
    };
  }

  const SAVE = { 4: "iptables-save", 6: "ip6tables-save" } as const;
  const RESTORE = { 4: "iptables-restore", 6: "ip6tables-restore" } as const;
  const ours = (l: string) => l.endsWith(` -j ${names.input}`) || l.endsWith(` -j ${names.forward}`);

  async function saved(
    f: Family,
  ): Promise<{ jumps: string[]; chains: Set<string>; natJumps: string[]; natChains: Set<string> }> {
    const lines = (await must([SAVE[f], "-t", "filter"])).split("\n");
    const nat = (await must([SAVE[f], "-t", "nat"])).split("\n");
    const chainsOf = (ls: string[]) =>
      new Set(ls.filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]!));
    return {
      jumps: lines.filter((l) => /^-A (INPUT|FORWARD|DOCKER-USER) /.test(l) && ours(l)),
      chains: chainsOf(lines),
      natJumps: nat.filter((l) => l.startsWith("-A PREROUTING ") && l.endsWith(` -j ${names.nat}`)),
      natChains: chainsOf(nat),
    };
  }

  /** One family's chains and jumps in one restore: old jumps deleted, new ones inserted first. */
  async function applyFamily(p: ResolvedPolicy, f: Family) {
    const { jumps, chains, natJumps } = await saved(f);
    const script = [
      "*filter",
      ...renderPolicyChains(p, names, f),
      ...jumps.map((l) => l.replace(/^-A /, "-D ")),
      ...policyJumps(names, chains.has("DOCKER-USER")).map((l) => l.replace(/^-A (\S+) /, "-I $1 1 ")),
      "COMMIT",
      "*nat",
      ...renderPolicyNat(p, names),
      ...natJumps.map((l) => l.replace(/^-A /, "-D ")),
      natJump(names).replace(/^-A (\S+) /, "-I $1 1 "),
      "COMMIT",
      "",
    ];
    await must([RESTORE[f], "--noflush"], script.join("\n"));
  }

  async function removeFamily(f: Family) {
    const { jumps, chains, natJumps, natChains } = await saved(f);
    const del = jumps.map((l) => l.replace(/^-A /, "-D "));
    const drop = [names.input, names.forward].filter((c) => chains.has(c)).flatMap((c) => [`-F ${c}`, `-X ${c}`]);
    if (del.length + drop.length > 0)
      await must([RESTORE[f], "--noflush"], ["*filter", ...del, ...drop, "COMMIT", ""].join("\n"));
    const natDel = [
      ...natJumps.map((l) => l.replace(/^-A /, "-D ")),
      ...(natChains.has(names.nat) ? [`-F ${names.nat}`, `-X ${names.nat}`] : []),
    ];
    if (natDel.length > 0) await must([RESTORE[f], "--noflush"], ["*nat", ...natDel, "COMMIT", ""].join("\n"));
  }

  async function removeSets() {
    const r = await exec(["ipset", "list", "-n"]);
    if (r.code !== 0) return;
    for (const s of r.stdout.split("\n").filter((x) => x.startsWith(`${names.setPrefix}_`)))
      await exec(["ipset", "destroy", s]);
  }

  return {
    names,
    state: (): PolicyState => state,

    /** Why a builder must not start now (the policy is on but not in force), or null. */
    refusal(): string | null {
      if (state.state === "off" || state.state === "enforced") return null;
      const why = state.state === "failed" ? state.error : "the builder network policy has not been applied";
      return `builders cannot start unfiltered: ${why}; fix the host (iptables, ip6tables and ipset are needed, as root) or set builders.network_policy = "off"`;
    },

    /** Applies the policy (idempotent: a second run leaves the same rules). Throws, and leaves
     * nothing of ours in either family, when it cannot be applied. */
    async apply(): Promise<void> {
      if (deps.settings.mode === "off") {
        state = { state: "off" };
        return;
      }
      try {
        const p = await resolved();
        await must(["ipset", "restore"], renderIpsetRestore(renderPolicySets(p, names)));
        await applyFamily(p, 4);
        try {
          await applyFamily(p, 6);
        } catch (e) {
          await removeFamily(4).catch(() => {});
          throw e;
        }
        state = { state: "enforced", since: new Date().toISOString() };
      } catch (e) {
        state = { state: "failed", error: (e as Error).message };
        throw e instanceof BuilderPolicyError ? e : new BuilderPolicyError((e as Error).message);
      }
    },

    /** True when both families still have our chains and jumps (a firewall reload may drop them). */
    async inForce(): Promise<boolean> {
      for (const f of [4, 6] as const) {
        const { jumps, chains, natJumps, natChains } = await saved(f);
        if (
          !chains.has(names.input) ||
          !chains.has(names.forward) ||
          policyJumps(names, chains.has("DOCKER-USER")).some((j) => !jumps.includes(j))
        )
          return false;
        if (!natChains.has(names.nat) || !natJumps.includes(natJump(names))) return false;
      }
      return true;
    },

    /** Re-applies when something of ours went missing; true when it had to. */
    async check(): Promise<boolean> {
      if (deps.settings.mode === "off") return false;
      let ok = false;
      try {
        ok = await this.inForce();
      } catch (e) {
        state = { state: "failed", error: (e as Error).message };
        return false;
      }
      if (ok) return false;
      await this.apply();
      return true;
    },

    /** Takes out exactly what apply put in: jumps, chains, sets. Builders then run unfiltered, so
     * this runs only when serve stops (builders are left running for the next serve to adopt). */
    async remove(): Promise<void> {
      for (const f of [4, 6] as const) await removeFamily(f);
      await removeSets();
      if (state.state !== "off") state = { state: "absent" };
    },
  };
}

export type BuilderNetworkPolicy = ReturnType<typeof builderNetworkPolicyFactory>;

/** /readyz and `slipway status`: whether builders are filtered. Not `fail`: the API still serves. */
export function networkPolicyHealthCheck(policy: Pick<BuilderNetworkPolicy, "state" | "names">): HealthCheck {
  return {
    name: "builders:network-policy",
    run: () => {
      const s = policy.state();
      switch (s.state) {
        case "enforced":
          return {
            status: "pass",
            output: `in force since ${s.since} on bridges ${policy.names.bridgePrefix}+ (chains ${policy.names.input}, ${policy.names.forward})`,
          };
        case "off":
          return {
            status: "warn",
            output: 'builders.network_policy = "off": builders reach link-local, private and this host\'s addresses',
          };
        case "failed":
          return { status: "warn", output: `not in force, so no builder starts: ${s.error}` };
        case "absent":
          return { status: "warn", output: "not applied, so no builder starts" };
      }
    },
  };
}
