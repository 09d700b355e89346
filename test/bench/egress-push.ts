/**
 * @module test/bench/egress-push
 * How soon a builder the appliance starts is reachable from a runner whose egress policy denies
 * by default: from the appliance's push of the builder addresses (egress service), through the
 * agent's long poll and its apply (a real agent process in the runner's network namespace), to
 * the first successful connection. Each try is one `curl` spawned in the namespace, as the
 * egress suite probes; the baseline, measured in the same run, is that probe's own cost once the
 * builder is allowed, so the ratio says how many probes the push takes. The test suite only
 * asserts that the builder becomes reachable (the claim "within 1 s" is this figure).
 * A report: nothing fails on timing; non-zero exit only if the bench cannot run (needs root).
 * The network is test/support/egress/topology.ts's; nothing here touches the root namespace.
 *
 * Usage: bun test/bench/egress-push.ts [--json] [--rounds 5]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { egressServiceFactory } from "../../src/egress/service.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { egressPrerequisiteMissing, lines, makeTopology, type Topology } from "../support/egress/topology.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: { json: { type: "boolean", default: false }, rounds: { type: "string", default: "5" } },
});
if (egressPrerequisiteMissing) {
  console.error(`the egress push bench cannot run: ${egressPrerequisiteMissing}`);
  process.exit(2);
}
const rounds = intOpt("rounds", opts.rounds!, 1, 100);
const BUILDER = "http://10.77.0.50/"; // the topology's stand-in builder

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dir = mkdtempSync(join(tmpdir(), "slipway-bench-egress-push-"));
let topo: Topology | null = null;
let agent: import("bun").Subprocess | null = null;
let stopped = false;
try {
  topo = await makeTopology();
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  const owner = { kind: "user" as const, userId: "u", username: "u", isAdmin: true, tokenId: null, memberships: {} };
  const u = orgs.createUser({ username: "owner" }, "system:bench");
  const orgId = orgs.create({ slug: "acme", name: "Acme", owner: "owner" }, { ...owner, userId: u.id }).id;
  const egress = egressServiceFactory({ db, audit, applianceHosts: [], extraAllow: [] });
  const hostId = egress.addHost(orgId, { name: "runner-1", scopes: ["host"] }, owner).host.id;

  // The agent in the runner's namespace, fed the appliance's long poll (as egress.test.ts does).
  const agentOpts = {
    hostsFile: topo.hostsFile,
    stateFile: join(dir, "agent-policy.json"),
    graceMs: 3000,
    nflogGroup: 5317,
    dnsListen: ["172.30.0.1"],
    watchdogMs: 500,
  };
  const proc = Bun.spawn(
    [
      "ip",
      "netns",
      "exec",
      topo.ns.runner,
      process.execPath,
      join(import.meta.dir, "../support/egress/agent-child.ts"),
      JSON.stringify(agentOpts),
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "ignore" },
  );
  agent = proc;
  const out = lines(proc);
  await out.next('"started":true', 60_000);
  void (async () => {
    let etag: string | null = null;
    while (!stopped) {
      const p = await egress.waitForPolicy(hostId, etag, 1000);
      if (p.etag !== etag && !stopped) {
        const sink = proc.stdin as import("bun").FileSink;
        sink.write(`${JSON.stringify(p)}\n`);
        await sink.flush();
        etag = p.etag;
      }
    }
  })();
  const applied = () => out.next(`"etag":"${egress.agentPolicy(hostId).etag}","ok":true`, 60_000);
  egress.setDefault(orgId, "deny", owner);
  egress.setMode(orgId, "enforce", owner);
  await applied();
  if ((await topo.curl(topo.ns.runner, BUILDER)) !== null)
    throw new Error("the builder is reachable before the push: the policy is not in force");

  const reachable: number[] = [];
  const probes: number[] = [];
  const probe: number[] = [];
  for (let r = 0; r < rounds; r++) {
    out.all.splice(0);
    const t0 = performance.now();
    egress.setBuilderAddresses(["10.77.0.50", "fd77::50"]);
    let tries = 0;
    for (const deadline = Date.now() + 60_000; ; ) {
      tries++;
      if ((await topo.curl(topo.ns.runner, BUILDER)) === "builder") break;
      if (Date.now() > deadline) throw new Error("the builder did not become reachable within 60 s");
    }
    reachable.push(performance.now() - t0);
    probes.push(tries);
    // Baseline: one probe of a builder already allowed.
    const p0 = performance.now();
    if ((await topo.curl(topo.ns.runner, BUILDER)) !== "builder") throw new Error("the builder stopped answering");
    probe.push(performance.now() - p0);
    await applied();
    egress.setBuilderAddresses([]);
    await applied();
    if ((await topo.curl(topo.ns.runner, BUILDER)) !== null)
      throw new Error("the builder is still reachable after its address was withdrawn");
  }
  const figures = { builder_reachable_ms: median(reachable), probe_ms: median(probe), probes: median(probes), rounds };
  if (opts.json) console.log(JSON.stringify(figures, null, 2));
  else {
    const rows: Row[] = [
      [
        "builder reachable after the push vs one probe (median)",
        figures.builder_reachable_ms,
        figures.probe_ms,
        "ms",
        0,
        { op: "≤", value: 1000 },
      ],
    ];
    console.log(
      `slipway egress push bench: bun ${Bun.version}; agent in a network namespace, default deny; ${rounds} rounds; probes per round (median) ${figures.probes}`,
    );
    for (const l of table(["metric", "value", "baseline", "ratio", "target"], rows)) console.log(l);
  }
} finally {
  stopped = true;
  agent?.kill("SIGKILL");
  await agent?.exited;
  await topo?.destroy();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
