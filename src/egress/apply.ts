/**
 * @module egress/apply
 * Puts a compiled policy into the kernel and takes it out again, touching only what Slipway owns:
 * its sets (refreshed by temporary set + `ipset swap`), its chain (rewritten whole by
 * `iptables-restore --noflush`, which flushes only the chains it declares) and its jump rules
 * (inserted first in OUTPUT / DOCKER-USER, deleted by their exact saved text). Other software's
 * chains are never flushed or reordered. Every command goes through src/host with argv arrays;
 * `netns` runs them inside a network namespace (tests; runners kept in their own namespace).
 */
import { run, type RunOptions, type RunResult } from "../host/run.ts";
import { jumpRule, namesFor, renderChain, renderIpsetRestore, renderSets, type Compiled, type Names } from "./render.ts";
import type { Family } from "./targets.ts";

export type HostExec = (argv: string[], opts?: RunOptions) => Promise<RunResult>;

/** Runs host commands, inside `netns` when given (`ip netns exec NAME argv…`, still no shell). */
export function hostExec(netns?: string): HostExec {
  return (argv, opts) => run(netns ? ["ip", "netns", "exec", netns, ...argv] : argv, opts);
}

export class EgressApplyError extends Error {
  override name = "EgressApplyError";
}

async function must(exec: HostExec, argv: string[], opts?: RunOptions): Promise<string> {
  const r = await exec(argv, opts);
  if (r.code !== 0) throw new EgressApplyError(`${argv.join(" ")} failed (${r.code}): ${r.stderr.trim().split("\n").slice(0, 3).join("; ")}`);
  return r.stdout;
}

const SAVE = { 4: "iptables-save", 6: "ip6tables-save" } as const;
const RESTORE = { 4: "iptables-restore", 6: "ip6tables-restore" } as const;

export interface ApplierOptions {
  exec: HostExec;
  /** Ruleset instance (chain SLIPWAY_EGRESS[_X], sets slw[x]_…); "" for the agent's one. */
  instance?: string;
}

export type Applier = ReturnType<typeof applierFactory>;

export function applierFactory({ exec, instance = "" }: ApplierOptions) {
  const names: Names = namesFor(instance);
  const ours = (line: string) => line.endsWith(` -j ${names.chain}`);

  /** Our jump lines in OUTPUT and DOCKER-USER, as saved, and whether DOCKER-USER exists. */
  async function savedJumps(family: Family): Promise<{ lines: string[]; chains: Set<string> }> {
    const text = await must(exec, [SAVE[family], "-t", "filter"]);
    const lines = text.split("\n").filter((l) => (l.startsWith("-A OUTPUT ") || l.startsWith("-A DOCKER-USER ")) && ours(l));
    const chains = new Set(text.split("\n").filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]!));
    return { lines, chains };
  }

  function wantedJumps(c: Compiled, family: Family, chains: Set<string>): string[] {
    const out: string[] = [];
    for (const j of c.jumps) {
      const r = jumpRule(j, names, family);
      if (!r) continue;
      if (r.chain === "DOCKER-USER" && !chains.has("DOCKER-USER")) continue; // created below
      out.push(`-A ${r.chain} ${r.spec}`);
    }
    return [...new Set(out)];
  }

  async function existingSets(): Promise<string[]> {
    const r = await exec(["ipset", "list", "-n"]);
    if (r.code !== 0) throw new EgressApplyError(`ipset list failed: ${r.stderr.trim()}`);
    return r.stdout.split("\n").filter((s) => s.startsWith(`${names.setPrefix}_`));
  }

  /** Makes the jumps exactly `want`: deletes stale or duplicate ones, inserts missing ones first. */
  async function syncJumps(family: Family, want: string[], have: string[]): Promise<boolean> {
    const seen = new Set<string>();
    const del: string[] = [];
    for (const l of have) {
      if (want.includes(l) && !seen.has(l)) seen.add(l);
      else del.push(l);
    }
    const add = want.filter((w) => !seen.has(w));
    if (del.length === 0 && add.length === 0) return false;
    const script = ["*filter", ...del.map((l) => l.replace(/^-A /, "-D ")), ...add.reverse().map((l) => l.replace(/^-A (\S+) /, "-I $1 1 ")), "COMMIT", ""].join("\n");
    await must(exec, [RESTORE[family], "--noflush"], { stdin: script });
    return true;
  }

  async function ensureDockerUser(c: Compiled, family: Family, chains: Set<string>): Promise<void> {
    // Container scopes live in DOCKER-USER. Docker creates it (and its FORWARD jump) at start and
    // reuses an existing one; on a host where Docker has not run yet we create the same shape.
    const needs = c.jumps.some((j) => jumpRule(j, names, family)?.chain === "DOCKER-USER");
    if (!needs || chains.has("DOCKER-USER")) return;
    await must(exec, [RESTORE[family], "--noflush"], { stdin: "*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n-I FORWARD 1 -j DOCKER-USER\nCOMMIT\n" });
    chains.add("DOCKER-USER");
  }

  return {
    names,

    /** Applies `c` (mode off: removes everything). Safe to repeat: a second run changes nothing. */
    async apply(c: Compiled): Promise<void> {
      if (c.mode === "off") return this.remove();
      const sets = renderSets(c, names);
      // 1. Sets first: the chain refers to them by name.
      await must(exec, ["ipset", "restore"], { stdin: renderIpsetRestore(sets) });
      // 2. The chain, then its jumps, per family.
      for (const f of [4, 6] as const) {
        await must(exec, [RESTORE[f], "--noflush"], { stdin: renderChain(c, names, f) });
        const { lines, chains } = await savedJumps(f);
        await ensureDockerUser(c, f, chains);
        await syncJumps(f, wantedJumps(c, f, chains), lines);
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
        const { lines, chains } = await savedJumps(f);
        if (missingSet || !chains.has(names.chain)) {
          await this.apply(c);
          return true;
        }
        await ensureDockerUser(c, f, chains);
        if (await syncJumps(f, wantedJumps(c, f, chains), lines)) repaired = true;
      }
      return repaired;
    },

    /** Removes exactly what Slipway added: jumps, chain, sets. */
    async remove(): Promise<void> {
      for (const f of [4, 6] as const) {
        const { lines, chains } = await savedJumps(f);
        await syncJumps(f, [], lines);
        if (chains.has(names.chain)) await must(exec, [RESTORE[f], "--noflush"], { stdin: `*filter\n-F ${names.chain}\n-X ${names.chain}\nCOMMIT\n` });
      }
      for (const s of await existingSets()) await must(exec, ["ipset", "destroy", s]);
    },
  };
}
