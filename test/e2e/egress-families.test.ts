/**
 * @module test/e2e/egress-families
 * IPv4 and IPv6 together, with real iptables, ip6tables and ipsets in namespaces this test
 * creates and real connections through them:
 * - a host whose Docker has no IPv6 rules (no ip6tables filter table, IPv6 forwarding off): the
 *   agent enforces its container scope and, uninstalled, leaves both families exactly as they
 *   were — no ip6tables filter table left behind;
 * - both families or neither: when ip6tables fails halfway through an apply, the IPv4 half (and
 *   the sets) are put back as they were, so the previous policy stays whole.
 *
 *   server (10.79.0.2:80) ── runner (10.79.0.1; bridge br-… 172.29.0.1/24) ── container (172.29.0.2)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { startEgressAgent, uninstallEgress } from "../../src/agent/agent.ts";
import { applierFactory } from "../../src/agent/apply.ts";
import { hostExec, type HostExec } from "../../src/host/exec.ts";
import type { Compiled } from "../../src/agent/render.ts";
import type { AgentPolicy } from "../../src/wire/egress/policy.ts";
import { run } from "../../src/host/run.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { integrationSuite } from "../support/integration.ts";
import { egressPrerequisiteMissing, lines } from "../support/egress/topology.ts";

const missing = egressPrerequisiteMissing;

async function sh(argv: string[], stdin?: string): Promise<string> {
  const r = await run(argv, stdin === undefined ? {} : { stdin });
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

integrationSuite("egress: IPv4 and IPv6 both or neither, and nothing left behind", missing, () => {
  const id = Math.random().toString(16).slice(2, 8);
  const ns = { runner: `slw${id}fr`, server: `slw${id}fs`, container: `slw${id}fc` };
  const bridge = `br-${id}ff00`;
  const dir = mkdtempSync(join(tmpdir(), "slipway-egress-families-"));
  const hostsFile = join(dir, "hosts");
  const exec = hostExec(ns.runner);
  let server: Subprocess | null = null;

  const inNs = (n: string, argv: string[], stdin?: string) => sh(["ip", "netns", "exec", n, ...argv], stdin);
  const clean = (t: string) =>
    t
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"))
      .join("\n");
  const snapshot = async () => ({
    v4: clean(await inNs(ns.runner, ["iptables-save"])),
    v6: clean(await inNs(ns.runner, ["ip6tables-save"])),
    sets: cleanSets(await inNs(ns.runner, ["ipset", "list"])),
  });
  // A set swapped in has a new hash seed and may take other memory; its members are what count.
  const cleanSets = (t: string) =>
    t
      .split("\n")
      .filter((l) => !l.startsWith("Size in memory"))
      .map((l) => l.replace(/ initval 0x[0-9a-f]+/, ""))
      .join("\n");
  const curl = async (from: string) => {
    const r = await run([
      "ip",
      "netns",
      "exec",
      from,
      "curl",
      "-sS",
      "--max-time",
      "2",
      "--connect-timeout",
      "1",
      "http://10.79.0.2/",
    ]);
    return r.code === 0 ? r.stdout : null;
  };

  beforeAll(async () => {
    for (const n of Object.values(ns)) {
      await sh(["ip", "netns", "add", n]);
      await inNs(n, ["ip", "link", "set", "lo", "up"]);
    }
    await sh([
      "ip",
      "-n",
      ns.runner,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns.server,
    ]);
    await sh(["ip", "-n", ns.runner, "addr", "add", "10.79.0.1/24", "dev", "eth0"]);
    await sh(["ip", "-n", ns.server, "addr", "add", "10.79.0.2/24", "dev", "eth0"]);
    for (const n of [ns.runner, ns.server]) await sh(["ip", "-n", n, "link", "set", "eth0", "up"]);
    await sh(["ip", "-n", ns.server, "route", "add", "172.29.0.0/24", "via", "10.79.0.1"]);
    // A Docker-like bridge with one container, and what dockerd without IPv6 sets up: IPv4
    // forwarding and DOCKER-USER in iptables only (no ip6tables filter table at all).
    await sh(["ip", "-n", ns.runner, "link", "add", bridge, "type", "bridge"]);
    await sh(["ip", "-n", ns.runner, "addr", "add", "172.29.0.1/24", "dev", bridge]);
    await sh(["ip", "-n", ns.runner, "link", "set", bridge, "up"]);
    await sh([
      "ip",
      "-n",
      ns.runner,
      "link",
      "add",
      "vc",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns.container,
    ]);
    await sh(["ip", "-n", ns.runner, "link", "set", "vc", "master", bridge, "up"]);
    await sh(["ip", "-n", ns.container, "addr", "add", "172.29.0.2/24", "dev", "eth0"]);
    await sh(["ip", "-n", ns.container, "link", "set", "eth0", "up"]);
    await sh(["ip", "-n", ns.container, "route", "add", "default", "via", "172.29.0.1"]);
    await inNs(ns.runner, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await inNs(
      ns.runner,
      ["iptables-restore", "--noflush"],
      "*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n-A FORWARD -j DOCKER-USER\nCOMMIT\n",
    );
    writeFileSync(hostsFile, "127.0.0.1 localhost\n");
    server = Bun.spawn(
      [
        "ip",
        "netns",
        "exec",
        ns.server,
        process.execPath,
        join(import.meta.dir, "../support/egress/http-server.ts"),
        "S",
      ],
      { stdout: "pipe", stderr: "ignore" },
    );
    await lines(server).next("ready");
  }, 60_000);

  afterAll(async () => {
    server?.kill("SIGKILL");
    await server?.exited;
    for (const n of Object.values(ns)) await run(["ip", "netns", "del", n]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a container scope on a host whose Docker has no IPv6 rules is enforced, and uninstall leaves no ip6tables filter table behind", async () => {
    const before = await snapshot();
    expect(before.v6.trim()).toBe(""); // no IPv6 filter table
    expect(await curl(ns.container)).toBe("S");
    const policy: AgentPolicy = {
      etag: "e1",
      org_id: "org_x",
      host_id: "rnh_x",
      mode: "enforce",
      default_action: "allow",
      rules: [{ action: "deny", target: "10.79.0.2/32", ports: null }],
      scopes: ["docker:*"],
      always_allow: [],
      always_allow_hosts: [],
    };
    let reported: { ok: boolean; error?: string | null } | null = null;
    const agent = await startEgressAgent({
      source: {
        fetch: async (etag, wait, signal) => {
          if (etag === policy.etag)
            await new Promise<void>((r) => (signal.addEventListener("abort", () => r()), setTimeout(r, wait * 1000)));
          return policy;
        },
        reportStatus: async (s) => void (reported = s),
        reportEvents: async () => {},
      },
      exec,
      log: silentLogger,
      hostsFile,
      stateFile: null,
      nflogGroup: 5319,
      graceMs: 1000,
      dnsServers: [],
    });
    try {
      const deadline = Date.now() + 10_000;
      while (!agent.compiled() && Date.now() < deadline) await Bun.sleep(50);
      await agent.settled();
      expect(reported).toMatchObject({ ok: true });
      expect(await curl(ns.container)).toBeNull(); // denied, from the container, through the bridge
      expect(await curl(ns.runner)).toBe("S"); // the host itself is not in scope
      const during = await snapshot();
      expect(during.v4).toContain(`-A DOCKER-USER -i br-+ ! -o br-+ -j SLIPWAY_EGRESS`);
      expect(during.v6.trim()).toBe(""); // nothing forwards IPv6 here: no table was made for it
    } finally {
      await agent.stop();
    }
    await uninstallEgress({ exec, hostsFile, stateFile: null });
    const after = await snapshot();
    expect(after.v4).toBe(before.v4);
    expect(after.v6).toBe(before.v6);
    expect(after.sets).toBe(before.sets);
    expect(await curl(ns.container)).toBe("S");
  }, 60_000);

  test("when ip6tables fails halfway through an apply, the IPv4 rules and the sets are put back: the previous policy stays whole", async () => {
    const baseline = await snapshot();
    const policy = (deny: string[]): Compiled => ({
      mode: "enforce",
      defaultAction: "allow",
      groups: [{ ports: null, allow: { 4: [], 6: [] }, deny: { 4: deny, 6: [] } }],
      always: { 4: [], 6: [] },
      dns: { 4: [], 6: [] },
      knownBridges: null,
      jumps: [{ kind: "host" }],
      nflogGroup: 5319,
    });
    const applier = applierFactory({ exec });
    await applier.apply(policy(["10.79.0.2/32"]));
    expect(await curl(ns.runner)).toBeNull();
    const before = await snapshot();
    expect(before.v6).toContain(":SLIPWAY_EGRESS");

    // ip6tables refuses the new chain (a missing module, a kernel without IPv6 filtering...).
    const failingV6: HostExec = async (argv, opts) =>
      argv[0] === "ip6tables-restore" && String(opts?.stdin ?? "").includes(":SLIPWAY_EGRESS")
        ? { code: 2, stdout: "", stderr: "ip6tables-restore: line 2 failed", timedOut: false }
        : exec(argv, opts);
    const partial = applierFactory({ exec: failingV6 });
    await expect(partial.apply(policy([]))).rejects.toThrow("ip6tables-restore");
    const after = await snapshot();
    expect(after.v4).toBe(before.v4);
    expect(after.v6).toBe(before.v6);
    expect(after.sets).toBe(before.sets);
    expect(await curl(ns.runner)).toBeNull(); // the previous policy, still whole

    // The first apply in a namespace fails the same way: nothing of it stays.
    await applier.remove();
    const clear = await snapshot();
    await expect(partial.apply(policy(["10.79.0.2/32"]))).rejects.toThrow("ip6tables-restore");
    expect(await snapshot()).toEqual(clear);
    expect(await curl(ns.runner)).toBe("S");

    // Without the failure, the change applies in both families.
    await applier.apply(policy([]));
    expect(await curl(ns.runner)).toBe("S");
    await applier.remove();
    const end = await snapshot();
    expect(end.v4).toBe(baseline.v4);
    expect(end.sets).toBe(baseline.sets);
  }, 60_000);
});
