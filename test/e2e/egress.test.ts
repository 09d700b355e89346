/**
 * @module test/e2e/egress
 * Egress enforcement with real rules: the agent (a real process in the runner's namespace)
 * applies an organization's policy from the appliance's egress service (real SQLite), and real
 * connections between namespaces decide every assertion. See test/support/egress/topology.ts
 * for the network; nothing here touches the root namespace.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { hostExec } from "../../src/host/exec.ts";
import { uninstallEgress } from "../../src/agent/agent.ts";
import { egressServiceFactory, type EgressService } from "../../src/egress/service.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { integrationSuite } from "../support/integration.ts";
import { egressPrerequisiteMissing, lines, makeTopology, type Topology } from "../support/egress/topology.ts";

// Every wait below has its own generous deadline; a test as a whole may take minutes on a busy machine.
setDefaultTimeout(300_000);

const missing = egressPrerequisiteMissing;

integrationSuite("egress enforcement in network namespaces", missing, () => {
  let topo: Topology;
  let egress: EgressService;
  let orgId: string;
  let hostId: string;
  let agent: { proc: Subprocess; out: ReturnType<typeof lines>; stop(signal?: NodeJS.Signals): Promise<void> } | null =
    null;
  let baseline: { v4: string; v6: string; sets: string; hosts: string };
  const dir = mkdtempSync(join(tmpdir(), "slipway-egress-"));
  const actor = "system:test";
  const ownerActor = {
    kind: "user" as const,
    userId: "u",
    username: "u",
    isAdmin: true,
    tokenId: null,
    memberships: {},
  };

  /** Starts the agent process in the runner namespace and feeds it the appliance's long poll. */
  async function startAgent() {
    const opts = {
      hostsFile: topo.hostsFile,
      stateFile: join(dir, "agent-policy.json"),
      graceMs: 10_000, // long enough that "within grace" below holds on a loaded machine
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
        JSON.stringify(opts),
      ],
      {
        stdin: "pipe",
        stdout: "pipe",
        stderr: process.env.EGRESS_DEBUG ? "inherit" : "ignore",
      },
    );
    const out = lines(proc);
    // Waited for without consuming: the status of a saved policy's apply comes before "started".
    await waitFor(() => out.all.some((l) => l.includes('"started":true')), 60_000);
    let stopped = false;
    void (async () => {
      let etag: string | null = null;
      while (!stopped) {
        const p = await egress.waitForPolicy(hostId, etag, 1000);
        if (p.etag !== etag && !stopped) {
          const sink = proc.stdin as import("bun").FileSink;
          // A FileSink buffers; unflushed, a policy may sit here while the test waits for its status.
          sink.write(`${JSON.stringify(p)}\n`);
          await sink.flush();
          etag = p.etag;
        }
      }
    })();
    return {
      proc,
      out,
      async stop(signal: NodeJS.Signals = "SIGKILL") {
        stopped = true;
        proc.kill(signal);
        await proc.exited;
        await out.done;
        absorb(out.all.splice(0)); // what it reported before it died still counts
      },
    };
  }

  /** Hands the agent's event reports among `out` lines to the appliance, as its HTTP source
   * would (lines skipped while waiting for a status must not lose the events among them). */
  function absorb(out: string[]): void {
    for (const l of out) {
      const m = JSON.parse(l) as { events?: Parameters<EgressService["reportEvents"]>[1] };
      if (m.events) egress.reportEvents(hostId, m.events);
    }
  }

  /** Waits for the agent's status line containing `text`; returns it. */
  async function statusLine(text: string): Promise<string> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const all = agent!.out.all;
      const i = all.findIndex((l) => l.includes(text));
      if (i >= 0) {
        const taken = all.splice(0, i + 1);
        absorb(taken);
        return taken[i]!;
      }
      if (Date.now() > deadline)
        throw new Error(`no status with '${text}' within 60 s (got ${all.slice(-5).join(" | ")})`);
      await Bun.sleep(50);
    }
  }

  /** Waits until the agent reports having applied the policy as it is now. */
  async function applied(): Promise<string> {
    const etag = egress.agentPolicy(hostId).etag;
    return statusLine(`"etag":"${etag}","ok":true`);
  }

  async function setPolicy(p: {
    mode: "off" | "monitor" | "enforce";
    default: "allow" | "deny";
    rules: ["allow" | "deny", string][];
  }) {
    absorb(agent!.out.all.splice(0)); // an etag seen before must not count as applied now
    for (const r of egress.getPolicy(orgId).rules) egress.removeRule(orgId, r.id, ownerActor);
    for (const [action, target] of p.rules) egress.addRule(orgId, { action, target }, ownerActor);
    egress.setDefault(orgId, p.default, ownerActor);
    egress.setMode(orgId, p.mode, ownerActor);
    return applied();
  }

  beforeAll(async () => {
    topo = await makeTopology();
    await topo.setZone(
      {
        "rr.test": ["10.77.0.21", "10.77.0.22", "10.77.0.23", "fd77::21", "fd77::22", "fd77::23"],
        "name.test": ["10.77.0.21"],
        "blocked.test": ["10.77.0.40", "fd77::40"],
      },
      1,
    );
    const db = openDatabase(join(dir, "slipway.db"));
    applyMigrations(db);
    const audit = auditServiceFactory({ db });
    const orgs = orgsServiceFactory({ db, audit });
    const u = orgs.createUser({ username: "owner" }, actor);
    orgId = orgs.create({ slug: "acme", name: "Acme", owner: "owner" }, { ...ownerActor, userId: u.id }).id;
    egress = egressServiceFactory({ db, audit, applianceHosts: [], extraAllow: [] });
    hostId = egress.addHost(orgId, { name: "runner-1", scopes: ["host", "docker:*"] }, ownerActor).host.id;
    const s = await topo.snapshot();
    baseline = { ...s, hosts: readFileSync(topo.hostsFile, "utf8") };
    agent = await startAgent();
  }, 300_000);

  afterAll(async () => {
    await agent?.stop();
    await topo?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a deny CIDR wins over an allowed hostname that resolves into it", async () => {
    await setPolicy({
      mode: "enforce",
      default: "allow",
      rules: [
        ["allow", "name.test"],
        ["deny", "10.77.0.20/30"],
      ],
    });
    expect(readFileSync(topo.hostsFile, "utf8")).toContain("10.77.0.21 name.test");
    expect(await topo.curl(topo.ns.runner, "http://name.test/")).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBe("C"); // default allow
  });

  test("a deny IP wins inside an allowed CIDR, for IPv4 and IPv6 alike; default deny refuses raw IPs and lets an allowed hostname through", async () => {
    await setPolicy({
      mode: "enforce",
      default: "deny",
      rules: [
        ["allow", "10.77.0.8/29"],
        ["deny", "10.77.0.12"],
        ["allow", "fd77::10/124"],
        ["deny", "fd77::12"],
        ["allow", "rr.test"],
      ],
    });
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.11/")).toBe("A");
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.12/")).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.13/")).toBe("A");
    expect(await topo.curl(topo.ns.runner, "http://[fd77::11]/")).toBe("A");
    expect(await topo.curl(topo.ns.runner, "http://[fd77::12]/")).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://[fd77::40]/")).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://rr.test/")).toBe("B");
    expect(await topo.curl(topo.ns.runner, "http://rr.test/", ["-6"])).toBe("B");
    // The IPv6 chain mirrors the IPv4 one rule for rule.
    const s = await topo.snapshot();
    const chain = (t: string) =>
      t
        .split("\n")
        .filter((l) => l.startsWith("-A SLIPWAY_EGRESS "))
        .map((l) => l.replace(/_[46] dst/, " dst").replace(/icmp6?-port-unreachable/, "unreachable"));
    expect(chain(s.v6).filter((l) => !l.includes("ipv6-icmp"))).toEqual(chain(s.v4));
  });

  test("the round-robin name stays reachable through 50 lookups and a TTL rollover, resolved through the pinned addresses", async () => {
    const started = Date.now();
    const hosts = readFileSync(topo.hostsFile, "utf8");
    for (const a of ["10.77.0.21", "10.77.0.22", "10.77.0.23", "fd77::21"]) expect(hosts).toContain(`${a} rr.test`);
    // What the runner's resolver answers is the pinned block (getent reads /etc/hosts first).
    const getent = await Bun.$`ip netns exec ${topo.ns.runner} getent ahostsv4 rr.test`.text();
    expect(
      new Set(
        getent
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split(/\s+/)[0]),
      ),
    ).toEqual(new Set(["10.77.0.21", "10.77.0.22", "10.77.0.23"]));
    // At least 50 lookups, and for at least two 1 s TTLs, so the agent re-resolves meanwhile
    // (a fast machine finishes 50 lookups sooner, so the loop runs on by time).
    for (let i = 0; i < 50 || Date.now() - started < 2_100; i++) {
      expect(await topo.curl(topo.ns.runner, "http://rr.test/")).toBe("B");
      await Bun.sleep(25);
    }
    // Rollover to a new address: the new one is pinned, the old one stays allowed for the grace period.
    await topo.setZone(
      {
        "rr.test": ["10.77.0.22", "10.77.0.23", "10.77.0.13"],
        "name.test": ["10.77.0.21"],
        "blocked.test": ["10.77.0.40", "fd77::40"],
      },
      1,
    );
    await waitFor(() => !readFileSync(topo.hostsFile, "utf8").includes("10.77.0.21 rr.test"), 30_000).catch((e) => {
      console.log(readFileSync(topo.hostsFile, "utf8"));
      throw e;
    });
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.21/")).toBe("B"); // within grace
    await waitFor(async () => (await topo.curl(topo.ns.runner, "http://10.77.0.21/")) === null, 60_000); // grace over
    for (let i = 0; i < 5; i++) expect(["A", "B"]).toContain((await topo.curl(topo.ns.runner, "http://rr.test/"))!);
  }, 300_000);

  test("containers on user-defined networks are filtered, including a network created after the agent started", async () => {
    expect(await topo.curl(topo.ns.c1, "http://10.77.0.11/")).toBe("A");
    expect(await topo.curl(topo.ns.c1, "http://10.77.0.40/")).toBeNull();
    expect(await topo.curl(topo.ns.c1, "http://10.77.0.12/")).toBeNull();
    // The container resolves through the pinning responder: the same pinned addresses.
    expect(await topo.curl(topo.ns.c1, "http://rr.test/")).not.toBeNull();
    await topo.addSecondNetwork();
    expect(await topo.curl(topo.ns.c2, "http://10.77.0.11/")).toBe("A");
    expect(await topo.curl(topo.ns.c2, "http://10.77.0.40/")).toBeNull();
    expect(await topo.curl(topo.ns.c2, "http://[fd77::40]/")).toBeNull();
    expect(await topo.curl(topo.ns.c2, "http://[fd77::11]/")).toBe("A");
  });

  test("a builder started by the appliance becomes reachable from the runner, and unreachable once withdrawn", async () => {
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.50/")).toBeNull();
    absorb(agent!.out.all.splice(0));
    const t0 = performance.now();
    egress.setBuilderAddresses(["10.77.0.50", "fd77::50"]);
    // The figure is a report (the claim "within a second" is measured, not asserted: a loaded
    // machine is slower); what must hold is that the push reaches the sets with no other change.
    await waitFor(async () => (await topo.curl(topo.ns.runner, "http://10.77.0.50/")) === "builder", 60_000);
    console.log(`builder reachable after ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await topo.curl(topo.ns.runner, "http://[fd77::50]/")).toBe("builder");
    await applied();
    absorb(agent!.out.all.splice(0));
    egress.setBuilderAddresses([]);
    await applied();
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.50/")).toBeNull();
  });

  test("killing the agent in enforce mode keeps the policy; restarting it adds no duplicate rules", async () => {
    const before = await topo.snapshot();
    await agent!.stop("SIGKILL");
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.11/")).toBe("A");
    agent = await startAgent(); // starts from the saved policy, then the appliance's
    await applied(); // the saved policy applied again (its status comes before "started")
    const after = await topo.snapshot();
    expect(after.v4).toBe(before.v4);
    expect(after.v6).toBe(before.v6);
    expect(after.v4.split("\n").filter((l) => l === "-A OUTPUT -j SLIPWAY_EGRESS")).toHaveLength(1);
  });

  test("the watchdog re-asserts the jumps after something rewrites the tables", async () => {
    await Bun.$`ip netns exec ${topo.ns.runner} iptables -D OUTPUT -j SLIPWAY_EGRESS`.quiet();
    await Bun.$`ip netns exec ${topo.ns.runner} iptables -F DOCKER-USER`.quiet();
    await waitFor(async () => (await topo.snapshot()).v4.includes("-A OUTPUT -j SLIPWAY_EGRESS"), 30_000);
    await waitFor(
      async () => (await topo.snapshot()).v4.includes("-A DOCKER-USER -i br-+ ! -o br-+ -j SLIPWAY_EGRESS"),
      30_000,
    );
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBeNull();
    expect(await topo.curl(topo.ns.c1, "http://10.77.0.40/")).toBeNull();
    await Bun.$`ip netns exec ${topo.ns.runner} iptables -A DOCKER-USER -j RETURN`.quiet(); // what Docker would restore
  });

  test("a uid:N scope filters that user's connections on a shared host and no one else's", async () => {
    egress.setHostScopes(hostId, ["uid:65534", "docker:*"], ownerActor);
    await setPolicy({
      mode: "enforce",
      default: "allow",
      rules: [
        ["deny", "10.77.0.40"],
        ["deny", "blocked.test"],
      ],
    });
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/", [], 65534)).toBeNull(); // nobody: in scope, denied
    expect(await topo.curl(topo.ns.runner, "http://[fd77::40]/", [], 65534)).toBeNull();
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.11/", [], 65534)).toBe("A"); // default allow
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBe("C"); // root: not in any scope
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/", [], 1000)).toBe("C"); // another user neither
    expect(await topo.curl(topo.ns.c1, "http://10.77.0.40/")).toBeNull(); // containers still are
    absorb(agent!.out.all.splice(0));
    egress.setHostScopes(hostId, ["host", "docker:*"], ownerActor);
    await applied();
  });

  test("monitor mode drops nothing and reports every would-be drop once, with the hostname", async () => {
    await setPolicy({
      mode: "monitor",
      default: "allow",
      rules: [
        ["deny", "blocked.test"],
        ["deny", "10.77.0.11"],
      ],
    });
    // -6: with both families pinned, curl's happy eyeballs would add an IPv4 attempt whenever IPv6 takes
    // over 200 ms (a loaded machine), which is a second, correct, but different event.
    for (let i = 0; i < 3; i++) expect(await topo.curl(topo.ns.runner, "http://blocked.test/", ["-6"])).toBe("C");
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.11/")).toBe("A");
    expect(await topo.curl(topo.ns.c1, "http://10.77.0.11/")).toBe("A");
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.12/")).toBe("A"); // not denied: no event
    // A last would-be drop as a marker (port 81, where nothing listens): the agent reads NFLOG in
    // order and reports its pending events together, oldest first, so once the marker's event is
    // in, every event of the connections above is in too (no fixed wait for stragglers).
    expect(await topo.curl(topo.ns.runner, "http://10.77.0.11:81/")).toBeNull();
    const feed = async () => absorb(agent!.out.all.splice(0));
    const settled = () =>
      egress.listEvents(orgId, { action: "would-block" }).some((e) => e.dst === "10.77.0.11" && e.port === 81) &&
      egress.listEvents(orgId, { action: "blocked" }).some((e) => e.dst === "10.77.0.40");
    await waitFor(async () => (await feed(), settled()), 60_000).catch((e) => {
      throw new Error(`${(e as Error).message}; events so far: ${JSON.stringify(egress.listEvents(orgId))}`);
    });
    const events = egress.listEvents(orgId, { action: "would-block" });
    // Enforce mode's refusals (earlier tests) are reported too, as "blocked".
    expect(egress.listEvents(orgId, { action: "blocked" }).some((e) => e.dst === "10.77.0.40")).toBe(true);
    // Nothing fails in monitor mode: all three went to fd77::40, reported as one event counted 3 times.
    const toBlocked = events.filter((e) => e.hostname === "blocked.test");
    expect(toBlocked).toEqual([
      expect.objectContaining({
        dst: "fd77::40",
        port: 80,
        protocol: "tcp",
        hostname: "blocked.test",
        scope: "host",
        count: 3,
      }),
    ]);
    expect(
      events
        .filter((e) => e.dst === "10.77.0.11" && e.port === 80)
        .map((e) => e.scope)
        .sort(),
    ).toEqual(["docker:*", "host"]);
    expect(events.filter((e) => e.dst === "10.77.0.12")).toEqual([]);
  });

  test("the resolvers are allowed for DNS only: a deny rule for a resolver's address holds on other ports, and a line added to resolv.conf opens nothing", async () => {
    // Something else listening on the resolver's address (port 80).
    const web = Bun.spawn(
      [
        "ip",
        "netns",
        "exec",
        topo.ns.dns,
        process.execPath,
        join(import.meta.dir, "../support/egress/http-server.ts"),
        "R",
      ],
      { stdout: "pipe", stderr: "ignore" },
    );
    const resolvConf = join("/etc/netns", topo.ns.runner, "resolv.conf");
    const originalResolv = readFileSync(resolvConf, "utf8");
    try {
      await lines(web).next("ready");
      await setPolicy({ mode: "enforce", default: "allow", rules: [["deny", "10.77.0.53"]] });
      expect(await topo.curl(topo.ns.runner, "http://10.77.0.53/")).toBeNull();
      // DNS to it still works (blocked.test is not pinned: the runner's resolver asks 10.77.0.53).
      const getent = await Bun.$`ip netns exec ${topo.ns.runner} getent ahostsv4 blocked.test`.nothrow().text();
      expect(getent).toContain("10.77.0.40");
      // A nameserver line for an address the policy denies: DNS to it only, never HTTP.
      writeFileSync(resolvConf, `${originalResolv}nameserver 10.77.0.40\n`);
      await setPolicy({ mode: "enforce", default: "allow", rules: [["deny", "10.77.0.40"]] });
      expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBeNull();
      const line = await setPolicy({ mode: "enforce", default: "deny", rules: [["allow", "10.77.0.8/29"]] });
      expect(await topo.curl(topo.ns.runner, "http://10.77.0.40/")).toBeNull();
      expect(await topo.curl(topo.ns.runner, "http://10.77.0.53/")).toBeNull();
      expect(await topo.curl(topo.ns.runner, "http://10.77.0.11/")).toBe("A");
      // The agent says which resolvers it allows (shown by `slipway egress apply-status`).
      const status = JSON.parse(line) as { status: { dns_resolvers: string[] } };
      expect(status.status.dns_resolvers).toEqual(["10.77.0.53", "10.77.0.40"]);
      const chain = (await topo.snapshot()).v4.split("\n").filter((l) => l.includes("_dns_4"));
      expect(chain).toEqual([
        expect.stringMatching(
          /^-A SLIPWAY_EGRESS -p udp -m set --match-set slw_dns_4 dst -m udp --dport 53 -j RETURN$/,
        ),
        expect.stringMatching(
          /^-A SLIPWAY_EGRESS -p tcp -m set --match-set slw_dns_4 dst -m tcp --dport 53 -j RETURN$/,
        ),
      ]);
    } finally {
      writeFileSync(resolvConf, originalResolv);
      web.kill("SIGKILL");
      await web.exited;
    }
    await setPolicy({ mode: "enforce", default: "allow", rules: [["deny", "10.77.0.40"]] });
  }, 300_000);

  test("uninstall leaves iptables-save, ip6tables-save, ipset list and /etc/hosts exactly as before", async () => {
    await agent!.stop("SIGTERM");
    agent = null;
    await uninstallEgress({
      exec: hostExec(topo.ns.runner),
      hostsFile: topo.hostsFile,
      stateFile: join(dir, "agent-policy.json"),
    });
    const s = await topo.snapshot();
    expect(s.v4).toBe(baseline.v4);
    expect(s.v6).toBe(baseline.v6);
    expect(s.sets).toBe(baseline.sets);
    expect(readFileSync(topo.hostsFile, "utf8")).toBe(baseline.hosts);
  });
});

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await Bun.sleep(100);
  }
}
