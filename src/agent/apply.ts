/**
 * @module agent/apply
 * Puts a compiled policy into the kernel and takes it out again, touching only what Slipway owns:
 * its sets (refreshed by temporary set + `ipset swap`), its chain (rewritten whole by
 * `iptables-restore --noflush`, which flushes only the chains it declares) and its jump rules
 * (inserted first in OUTPUT / DOCKER-USER, deleted by their exact saved text). Other software's
 * chains are never flushed or reordered. Every command goes through src/host with argv arrays;
 * `netns` runs them inside a network namespace (tests; runners kept in their own namespace).
 */
import type { HostExec } from "../host/exec.ts";
import { renderIpsetRestore } from "../host/ipset.ts";
import type { RunOptions } from "../host/run.ts";
import { jumpRule, namesFor, renderChain, renderSets, type Compiled, type Names } from "./render.ts";
import type { Family } from "../wire/egress/targets.ts";

export class EgressApplyError extends Error {
  override name = "EgressApplyError";
}

async function must(exec: HostExec, argv: string[], opts?: RunOptions): Promise<string> {
  const r = await exec(argv, opts);
  if (r.code !== 0)
    throw new EgressApplyError(
      `${argv.join(" ")} failed (${r.code}): ${r.stderr.trim().split("\n").slice(0, 3).join("; ")}`,
    );
  return r.stdout;
}

const SAVE = { 4: "iptables-save", 6: "ip6tables-save" } as const;
const RESTORE = { 4: "iptables-restore", 6: "ip6tables-restore" } as const;

/** What one ruleset instance has in the kernel now: per family its jump lines, its chains' rules
 * and the table's chains; its sets, with or without their members. */
function kernelStateReader(exec: HostExec, names: Names) {
  const ourChains = [names.chain, names.newNetworks];
  const ours = (line: string) => ourChains.some((c) => line.endsWith(` -j ${c}`));

  /** The filter table of one family as saved: whether it exists at all, our jump lines in OUTPUT
   * and DOCKER-USER, our chains' rules, and its chains. `*-save` without `-t` prints only the
   * tables that exist (with `-t filter` it prints an empty one), and creates none. */
  async function saved(
    family: Family,
  ): Promise<{ exists: boolean; lines: string[]; rules: string[]; chains: Set<string> }> {
    const all = (await must(exec, [SAVE[family]])).split("\n");
    const from = all.indexOf("*filter");
    const table = from < 0 ? [] : all.slice(from, all.indexOf("COMMIT", from));
    const lines = table.filter((l) => (l.startsWith("-A OUTPUT ") || l.startsWith("-A DOCKER-USER ")) && ours(l));
    const rules = table.filter((l) => ourChains.some((c) => l.startsWith(`-A ${c} `)));
    const chains = new Set(table.filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]!));
    return { exists: from >= 0, lines, rules, chains };
  }

  async function existingSets(): Promise<string[]> {
    const r = await exec(["ipset", "list", "-n"]);
    if (r.code !== 0) throw new EgressApplyError(`ipset list failed: ${r.stderr.trim()}`);
    return r.stdout.split("\n").filter((s) => s.startsWith(`${names.setPrefix}_`));
  }

  /** Our sets with their members (`ipset save`), to put back when an apply fails halfway. */
  async function savedSets(): Promise<Map<string, { family: Family; members: string[] }>> {
    const out = new Map<string, { family: Family; members: string[] }>();
    const r = await exec(["ipset", "save"]);
    if (r.code !== 0) throw new EgressApplyError(`ipset save failed: ${r.stderr.trim()}`);
    for (const l of r.stdout.split("\n")) {
      const [verb, name, arg, ...rest] = l.split(" ");
      if (!name?.startsWith(`${names.setPrefix}_`) || name.endsWith("_t")) continue;
      if (verb === "create") out.set(name, { family: rest.includes("inet6") ? 6 : 4, members: [] });
      else if (verb === "add" && arg) out.get(name)?.members.push(arg);
    }
    return out;
  }

  return { saved, existingSets, savedSets };
}

/** Does this family need rules at all? Container scopes filter forwarded packets: with IPv6
 * forwarding off (Docker without IPv6) none pass, and writing rules would only create an
 * ip6tables filter table that uninstall cannot take away again. */
async function needed(exec: HostExec, names: Names, c: Compiled, family: Family): Promise<boolean> {
  if (family === 4 || c.jumps.some((j) => jumpRule(j, names, 6)?.chain === "OUTPUT")) return true;
  const r = await exec(["sysctl", "-n", "net.ipv6.conf.all.forwarding"]);
  return r.code === 0 && r.stdout.trim() !== "0";
}

/** The restore lines that make the jumps exactly `want`: delete stale or duplicate ones, insert missing ones first. */
function jumpLines(want: string[], have: string[]): string[] {
  const seen = new Set<string>();
  const del: string[] = [];
  for (const l of have) {
    if (want.includes(l) && !seen.has(l)) seen.add(l);
    else del.push(l);
  }
  const add = want.filter((w) => !seen.has(w));
  return [
    ...del.map((l) => l.replace(/^-A /, "-D ")),
    ...add.reverse().map((l) => l.replace(/^-A (\S+) /, "-I $1 1 ")),
  ];
}

/** The jump lines `c` wants in one family (a DOCKER-USER one only once that chain exists). */
function wantedJumps(names: Names, c: Compiled, family: Family, chains: Set<string>): string[] {
  const out: string[] = [];
  for (const j of c.jumps) {
    const r = jumpRule(j, names, family);
    if (!r) continue;
    if (r.chain === "DOCKER-USER" && !chains.has("DOCKER-USER")) continue; // created below
    out.push(`-A ${r.chain} ${r.spec}`);
  }
  return [...new Set(out)];
}

export interface ApplierOptions {
  exec: HostExec;
  /** Ruleset instance (chain SLIPWAY_EGRESS[_X], sets slw[x]_…); "" for the agent's one. */
  instance?: string;
}

export type Applier = ReturnType<typeof applierFactory>;

export function applierFactory({ exec, instance = "" }: ApplierOptions) {
  const names: Names = namesFor(instance);
  const ourChains = [names.chain, names.newNetworks];
  const { saved, existingSets, savedSets } = kernelStateReader(exec, names);

  /** Makes the jumps exactly `want`; true when something changed. */
  async function syncJumps(family: Family, want: string[], have: string[]): Promise<boolean> {
    const script = jumpLines(want, have);
    if (script.length === 0) return false;
    await must(exec, [RESTORE[family], "--noflush"], { stdin: ["*filter", ...script, "COMMIT", ""].join("\n") });
    return true;
  }

  async function ensureDockerUser(c: Compiled, family: Family, chains: Set<string>): Promise<void> {
    // Container scopes live in DOCKER-USER. Docker creates it (and its FORWARD jump) at start and
    // reuses an existing one; on a host where Docker has not run yet we create the same shape.
    const needs = c.jumps.some((j) => jumpRule(j, names, family)?.chain === "DOCKER-USER");
    if (!needs || chains.has("DOCKER-USER")) return;
    await must(exec, [RESTORE[family], "--noflush"], {
      stdin: "*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n-I FORWARD 1 -j DOCKER-USER\nCOMMIT\n",
    });
    chains.add("DOCKER-USER");
  }

  /** Takes our jumps and chains out of one family's filter table (creating no table). */
  async function removeFamily(family: Family): Promise<void> {
    const { exists, lines, chains } = await saved(family);
    if (!exists) return;
    await syncJumps(family, [], lines);
    const present = ourChains.filter((ch) => chains.has(ch));
    // Flush all first: the new-network chain jumps to the policy chain.
    if (present.length)
      await must(exec, [RESTORE[family], "--noflush"], {
        stdin: ["*filter", ...present.map((ch) => `-F ${ch}`), ...present.map((ch) => `-X ${ch}`), "COMMIT", ""].join(
          "\n",
        ),
      });
  }

  /** The chains and their jumps in one transaction: the new-network chain lets a bridge through
   * only once its own jump is there, so neither may be in force without the other. */
  async function applyFamily(c: Compiled, f: Family): Promise<void> {
    const { lines, chains } = await saved(f);
    await ensureDockerUser(c, f, chains);
    const chain = renderChain(c, names, f)
      .split("\n")
      .filter((l) => l !== "COMMIT" && l !== "");
    const drop =
      !c.knownBridges && chains.has(names.newNetworks) ? [`-F ${names.newNetworks}`, `-X ${names.newNetworks}`] : [];
    await must(exec, [RESTORE[f], "--noflush"], {
      stdin: [...chain, ...jumpLines(wantedJumps(names, c, f, chains), lines), ...drop, "COMMIT", ""].join("\n"),
    });
  }

  return {
    names,

    /** Applies `c` (mode off: removes everything). Safe to repeat: a second run changes nothing.
     * Both families or neither: when any step fails, what was in force before is put back (sets,
     * chains and jumps of both families) and the error is thrown. */
    async apply(c: Compiled): Promise<void> {
      if (c.mode === "off") return this.remove();
      const sets = renderSets(c, names);
      const before = { sets: await savedSets(), 4: await saved(4), 6: await saved(6) };
      try {
        // 1. Sets first: the chain refers to them by name.
        await must(exec, ["ipset", "restore"], { stdin: renderIpsetRestore(sets) });
        // 2. The chains, then their jumps, per family.
        for (const f of [4, 6] as const) {
          if (await needed(exec, names, c, f)) await applyFamily(c, f);
          else await removeFamily(f);
        }
      } catch (e) {
        await rollback(before).catch((r) => {
          throw new EgressApplyError(`${String(e)}; putting back the previous rules failed too: ${String(r)}`);
        });
        throw e;
      }
      // 3. Sets the new chain no longer uses (a port group went away).
      for (const s of await existingSets()) if (!sets.has(s)) await exec(["ipset", "destroy", s]);
    },

    /** Re-asserts the jumps (after Docker or a firewall manager rewrote the tables); true when
     * something had to be repaired. A missing chain or set means a full re-apply. */
    async check(c: Compiled): Promise<boolean> {
      if (c.mode === "off") return false;
      let repaired = false;
      const sets = await existingSets();
      const missingSet = [...renderSets(c, names).keys()].some((s) => !sets.includes(s));
      for (const f of [4, 6] as const) {
        if (!(await needed(exec, names, c, f))) continue;
        const { lines, chains } = await saved(f);
        if (missingSet || !chains.has(names.chain) || (c.knownBridges && !chains.has(names.newNetworks))) {
          await this.apply(c);
          return true;
        }
        await ensureDockerUser(c, f, chains);
        if (await syncJumps(f, wantedJumps(names, c, f, chains), lines)) repaired = true;
      }
      return repaired;
    },

    /** Removes exactly what Slipway added: jumps, chains, sets. */
    async remove(): Promise<void> {
      for (const f of [4, 6] as const) await removeFamily(f);
      for (const s of await existingSets()) await must(exec, ["ipset", "destroy", s]);
    },
  };

  /** Puts back the sets, chains and jumps saved before a failed apply. */
  async function rollback(before: {
    sets: Map<string, { family: Family; members: string[] }>;
    4: Awaited<ReturnType<typeof saved>>;
    6: Awaited<ReturnType<typeof saved>>;
  }): Promise<void> {
    if (before.sets.size) await must(exec, ["ipset", "restore"], { stdin: renderIpsetRestore(before.sets) });
    for (const f of [4, 6] as const) {
      const was = before[f];
      if (!was.chains.has(names.chain)) {
        await removeFamily(f);
        continue;
      }
      const declared = ourChains.filter((ch) => was.chains.has(ch));
      await must(exec, [RESTORE[f], "--noflush"], {
        stdin: ["*filter", ...declared.map((ch) => `:${ch} - [0:0]`), ...was.rules, "COMMIT", ""].join("\n"),
      });
      const now = await saved(f);
      await syncJumps(f, was.lines, now.lines);
      if (!was.chains.has(names.newNetworks) && now.chains.has(names.newNetworks))
        await must(exec, [RESTORE[f], "--noflush"], {
          stdin: `*filter\n-F ${names.newNetworks}\n-X ${names.newNetworks}\nCOMMIT\n`,
        });
    }
    for (const s of await existingSets()) if (!before.sets.has(s)) await exec(["ipset", "destroy", s]);
  }
}
