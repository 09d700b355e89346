/**
 * @module test/bench/egress
 * What egress enforcement costs, with real rules in two network namespaces this bench creates
 * (client ⇄ server over a veth pair; nothing in the root namespace):
 *   1. time to apply a policy of 10, 1,000 and 10,000 entries through src/egress (ipsets swapped,
 *      the chain rewritten by iptables-restore --noflush) versus the same entries as one iptables
 *      rule each (one iptables-restore of the whole chain), measured in the same run;
 *   2. new TCP connections per second from the client namespace through a 10,000-entry policy
 *      (default deny, the server allowed last) with ipsets, and with one rule each, versus no policy.
 * A report: nothing fails on timing; non-zero exit only if the bench cannot run (needs root).
 *
 * Usage: bun test/bench/egress.ts [--json] [--connects 3000]
 */
import { parseArgs } from "node:util";
import { applierFactory } from "../../src/agent/apply.ts";
import { hostExec } from "../../src/host/exec.ts";
import { namesFor, renderChainOneRuleEach, type Compiled } from "../../src/agent/render.ts";
import { run } from "../../src/host/run.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    connects: { type: "string", default: "3000" },
    "child-server": { type: "boolean", default: false },
    "child-client": { type: "string" },
  },
});

// --- children, run inside the namespaces ---
if (opts["child-server"]) {
  Bun.listen({
    hostname: "10.99.0.2",
    port: 9000,
    socket: {
      open(s) {
        s.end();
      },
      data() {},
    },
  });
  console.log("ready");
  await new Promise(() => {});
}
if (opts["child-client"]) {
  const n = Number(opts["child-client"]);
  const t0 = performance.now();
  let failed = 0;
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve) => {
      Bun.connect({
        hostname: "10.99.0.2",
        port: 9000,
        socket: {
          open(s) {
            s.end();
            resolve();
          },
          data() {},
          connectError() {
            failed++;
            resolve();
          },
          close() {},
        },
      }).catch(() => {
        failed++;
        resolve();
      });
    });
  }
  console.log(JSON.stringify({ perSecond: n / ((performance.now() - t0) / 1000), failed }));
  process.exit(0);
}

if (process.getuid?.() !== 0) {
  console.error("the egress bench needs root (network namespaces, iptables)");
  process.exit(2);
}
const connects = intOpt("connects", opts.connects!, 100, 1_000_000);
const id = Math.random().toString(16).slice(2, 8);
const client = `slwb${id}c`;
const server = `slwb${id}s`;
const sh = async (argv: string[], stdin?: string) => {
  const r = await run(argv, stdin === undefined ? { timeoutMs: 300_000 } : { stdin, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

function policy(entries: number): Compiled {
  // Entries spread over 100.64.0.0/10 (never the server), half /32 addresses and half /24s.
  const allow: string[] = [];
  for (let i = 0; i < entries - 1; i++) {
    const a = 64 + ((i >> 16) & 63);
    allow.push(i % 2 ? `100.${a}.${(i >> 8) & 255}.${i & 255}/32` : `100.${a}.${(i >> 8) & 255}.0/24`);
  }
  allow.push("10.99.0.2/32"); // the server, last
  return {
    mode: "enforce",
    defaultAction: "deny",
    groups: [{ ports: null, allow: { 4: [...new Set(allow)], 6: [] }, deny: { 4: [], 6: [] } }],
    always: { 4: [], 6: [] },
    dns: { 4: [], 6: [] },
    knownBridges: null,
    jumps: [{ kind: "host" }],
    nflogGroup: 5317,
  };
}

async function rate(): Promise<number> {
  const out = await sh([
    "ip",
    "netns",
    "exec",
    client,
    process.execPath,
    import.meta.path,
    "--child-client",
    String(connects),
  ]);
  const r = JSON.parse(out) as { perSecond: number; failed: number };
  if (r.failed) throw new Error(`${r.failed} connections failed: the policy should allow the server`);
  return r.perSecond;
}

const time = async (f: () => Promise<unknown>) => {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
};

let serverProc: ReturnType<typeof Bun.spawn> | null = null;
try {
  for (const n of [client, server]) {
    await sh(["ip", "netns", "add", n]);
    await sh(["ip", "-n", n, "link", "set", "lo", "up"]);
  }
  await sh(["ip", "-n", client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", server]);
  await sh(["ip", "-n", client, "addr", "add", "10.99.0.1/24", "dev", "eth0"]);
  await sh(["ip", "-n", server, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
  await sh(["ip", "-n", client, "link", "set", "eth0", "up"]);
  await sh(["ip", "-n", server, "link", "set", "eth0", "up"]);
  serverProc = Bun.spawn(["ip", "netns", "exec", server, process.execPath, import.meta.path, "--child-server"], {
    stdout: "pipe",
    stderr: "inherit",
  });
  await (serverProc.stdout as ReadableStream<Uint8Array>).getReader().read();

  const exec = hostExec(client);
  const applier = applierFactory({ exec });
  const names = namesFor();
  const oneRuleEach = async (c: Compiled) => {
    await sh(["ip", "netns", "exec", client, "iptables-restore", "--noflush"], renderChainOneRuleEach(c, names, 4));
    await sh(
      ["ip", "netns", "exec", client, "iptables-restore", "--noflush"],
      "*filter\n-I OUTPUT 1 -j SLIPWAY_EGRESS\nCOMMIT\n",
    );
  };
  const rows: Row[] = [];
  const figures: Record<string, number> = {};
  for (const n of [10, 1000, 10_000]) {
    const c = policy(n);
    await applier.remove();
    const first = await time(() => applier.apply(c));
    const again = await time(() => applier.apply(c)); // a refresh: sets swapped, chain rewritten
    await applier.remove();
    const rules = await time(() => oneRuleEach(c));
    await applier.remove();
    rows.push([`apply ${n.toLocaleString("en")} entries: ipsets (first) vs one rule each`, first, rules, "ms", 0]);
    rows.push([`apply ${n.toLocaleString("en")} entries: ipsets (refresh) vs one rule each`, again, rules, "ms", 0]);
    Object.assign(figures, { [`apply_${n}_ms`]: first, [`refresh_${n}_ms`]: again, [`one_rule_each_${n}_ms`]: rules });
  }
  await rate(); // warm-up: the first run pays for JIT, ARP and conntrack table growth
  const none = Math.max(await rate(), await rate());
  await applier.apply(policy(10_000));
  const withSets = Math.max(await rate(), await rate());
  await applier.remove();
  await oneRuleEach(policy(10_000));
  const withRules = Math.max(await rate(), await rate());
  await applier.remove();
  rows.push(["new connections/s: 10,000 entries in ipsets vs no policy", withSets, none, "conn/s", 0]);
  rows.push(["new connections/s: 10,000 entries one rule each vs no policy", withRules, none, "conn/s", 0]);
  Object.assign(figures, {
    conn_per_s_none: none,
    conn_per_s_ipsets_10000: withSets,
    conn_per_s_rules_10000: withRules,
  });
  if (opts.json) console.log(JSON.stringify(figures, null, 2));
  else {
    console.log(
      `slipway egress bench: bun ${Bun.version}; iptables (nf_tables) and ipset in two namespaces; ${connects} sequential connections per rate, best of 2`,
    );
    for (const l of table(["metric", "value", "baseline", "ratio", "target"], rows)) console.log(l);
  }
} finally {
  serverProc?.kill("SIGKILL");
  for (const n of [client, server]) await run(["ip", "netns", "del", n]);
}
