/**
 * @module test/e2e/egress-dns
 * The egress agent's DNS side, whole: the real agent (policy from the real egress service on
 * SQLite) applies its sets and chain inside a network namespace this test creates, resolves
 * through a DNS server the test runs on loopback (test/support/egress/zone-server), answers
 * questions on its pinning responder on loopback, and writes a hosts file of the test's own.
 * Every assertion reads what the agent really wrote: the hosts file and the namespace's ipsets.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { startEgressAgent, uninstallEgress, type EgressAgent } from "../../src/agent/agent.ts";
import { hostExec } from "../../src/host/exec.ts";
import { encodeQuery, parseAnswer, TYPE_A } from "../../src/agent/dns.ts";
import { egressServiceFactory, type EgressService } from "../../src/egress/service.ts";
import { run, which } from "../../src/host/run.ts";
import { createLogger, silentLogger } from "../../src/log/logger.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { integrationSuite } from "../support/integration.ts";
import {
  encodeReply,
  sendFrom,
  startZoneServer,
  type ZoneRecord,
  type ZoneServer,
} from "../support/egress/zone-server.ts";

const missing =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, iptables)"
    : !which("iptables-restore") || !which("ip6tables-restore") || !which("ipset") || !which("ip")
      ? "needs iptables, ipset and iproute2"
      : null;

const A = (name: string, data: string, ttl = 60): ZoneRecord => ({ name, type: "A", ttl, data });
/** The burst's names each resolve to their own address, so the sets show which are learned. */
const burstAddr = (i: number) => `10.78.0.${i + 1}`;
/** Small enough to reach in a short burst; the idle time well beyond the burst's length. */
const MAX_LEARNED = 8;
const IDLE_MS = 15_000;
const BURST = 12;

integrationSuite("egress DNS: resolver, pinning responder and hosts file", missing, () => {
  const id = Math.random().toString(16).slice(2, 8);
  const ns = `slw${id}dns`;
  const dir = mkdtempSync(join(tmpdir(), "slipway-egress-dns-"));
  const hostsFile = join(dir, "hosts");
  const originalHosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost"; // no final newline
  const ownerActor = {
    kind: "user" as const,
    userId: "u",
    username: "u",
    isAdmin: true,
    tokenId: null,
    memberships: {},
  };
  let server: ZoneServer;
  let egress: EgressService;
  let hostId: string;
  let agent: EgressAgent | null = null;
  let responderPort = 0;
  const statuses: { etag: string; ok: boolean }[] = [];

  const hosts = () => readFileSync(hostsFile, "utf8");
  const sets = async () => (await run(["ip", "netns", "exec", ns, "ipset", "list"])).stdout;
  const applies = () => statuses.filter((s) => s.ok).length;

  /** A question to the pinning responder, as a container's stub resolver would ask it. */
  async function ask(name: string, timeoutMs = 8000): Promise<ReturnType<typeof parseAnswer> | null> {
    const qid = randomInt(0, 65536);
    const got = Promise.withResolvers<Uint8Array | null>();
    const sock = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data: (_s, buf) => (parseAnswer(new Uint8Array(buf)).id === qid ? got.resolve(new Uint8Array(buf)) : undefined),
        error() {},
      },
    });
    const timer = setTimeout(() => got.resolve(null), timeoutMs);
    sock.send(encodeQuery(qid, name, TYPE_A), responderPort, "127.0.0.1");
    const reply = await got.promise;
    clearTimeout(timer);
    sock.close();
    return reply ? parseAnswer(reply) : null;
  }

  beforeAll(async () => {
    await run(["ip", "netns", "add", ns]);
    await run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    writeFileSync(hostsFile, originalHosts);
    server = await startZoneServer("127.0.0.1", async (q, query, peer) => {
      if (q.type !== TYPE_A) return encodeReply(query, []);
      const burst = /^b(\d+)\.wild\.test$/.exec(q.name);
      // Upstream's TTL is 300; the responder's pinned answers say at most 60, which tells them apart.
      if (burst) return encodeReply(query, [A(q.name, burstAddr(Number(burst[1])), 300)]);
      if (q.name.includes("\n")) return encodeReply(query, [A(q.name, "10.77.0.40")]);
      if (q.name.endsWith(".wild.test")) return encodeReply(query, [A(q.name, "10.77.0.11", 300)]);
      if (q.name === "allowed.test")
        return encodeReply(query, [A(q.name, "10.77.0.21"), A("unrelated.test", "10.77.0.66")]);
      if (q.name === "cname.test")
        return encodeReply(query, [
          { name: q.name, type: "CNAME", ttl: 60, data: "edge.cdn.test" },
          A("decoy.test", "10.77.0.67"),
          A("edge.cdn.test", "10.77.0.31"),
        ]);
      if (q.name === "spoofed.test") {
        // Someone on the runner host who knows the query's id and port answers first.
        const forged = encodeReply(query, [A(q.name, "10.77.0.99")]);
        await sendFrom("127.0.0.2", peer, forged);
        await sendFrom("127.0.0.1", peer, forged);
        await Bun.sleep(100);
        return encodeReply(query, [A(q.name, "10.77.0.41")]);
      }
      return encodeReply(query, [], { rcode: 3 });
    });
    const probe = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    responderPort = probe.port;
    probe.close();

    const db = openDatabase(join(dir, "slipway.db"));
    applyMigrations(db);
    const audit = auditServiceFactory({ db });
    const orgs = orgsServiceFactory({ db, audit });
    const u = orgs.createUser({ username: "owner" }, "system:test");
    const orgId = orgs.create({ slug: "acme", name: "Acme", owner: "owner" }, { ...ownerActor, userId: u.id }).id;
    egress = egressServiceFactory({ db, audit, applianceHosts: [], extraAllow: [] });
    hostId = egress.addHost(orgId, { name: "runner-1", scopes: ["host"] }, ownerActor).host.id;
    for (const target of ["*.wild.test", "allowed.test", "cname.test", "spoofed.test"])
      egress.addRule(orgId, { action: "allow", target }, ownerActor);
    egress.setDefault(orgId, "deny", ownerActor);
    egress.setMode(orgId, "enforce", ownerActor);

    agent = await startEgressAgent({
      source: {
        fetch: (etag, wait, signal) => egress.waitForPolicy(hostId, etag, wait * 1000, signal),
        reportStatus: async (s) => void statuses.push(s),
        reportEvents: async () => {},
      },
      exec: hostExec(ns),
      log: process.env.EGRESS_DEBUG ? createLogger({ level: "debug" }) : silentLogger,
      hostsFile,
      stateFile: null,
      nflogGroup: 5319,
      graceMs: 1000,
      dnsServers: [`127.0.0.1#${server.port}`],
      dnsListen: [`127.0.0.1#${responderPort}`],
      maxLearnedNames: MAX_LEARNED,
      learnedIdleMs: IDLE_MS,
    });
    await waitFor(() => applies() > 0, 15_000);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    server?.stop();
    await run(["ip", "netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("only the records along the CNAME chain are pinned: extra records for unrelated names reach neither the hosts file nor the sets", async () => {
    await waitFor(
      () => hosts().includes("10.77.0.21 allowed.test") && hosts().includes("10.77.0.31 cname.test"),
      10_000,
    );
    const s = await sets();
    expect(s).toContain("10.77.0.21");
    expect(s).toContain("10.77.0.31"); // the CNAME target's address is allowed
    for (const extra of ["10.77.0.66", "10.77.0.67"]) {
      expect(hosts()).not.toContain(extra);
      expect(s).not.toContain(extra);
    }
  });

  test("a forged reply from another address or port on the runner host is not pinned", async () => {
    await waitFor(() => hosts().includes("10.77.0.41 spoofed.test"), 10_000);
    expect(hosts()).not.toContain("10.77.0.99");
    expect(await sets()).not.toContain("10.77.0.99");
  });

  test("across a real link between two namespaces, a forged reply from another host or another port of the resolver is ignored", async () => {
    // A client namespace (the agent's resolver) and a network namespace with the resolver (.53) and
    // a forger (.66) on it, joined by a veth pair. Both are new: no egress rules in the way.
    const cli = `${ns}c`;
    const net = `${ns}n`;
    await run(["ip", "netns", "add", cli]);
    await run(["ip", "netns", "add", net]);
    let server: import("bun").Subprocess | null = null;
    try {
      const must = async (argv: string[]) => {
        const r = await run(argv);
        if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
      };
      await must(["ip", "-n", net, "link", "set", "lo", "up"]);
      await must(["ip", "-n", cli, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", net]);
      await must(["ip", "-n", cli, "addr", "add", "10.79.0.2/24", "dev", "eth0"]);
      await must(["ip", "-n", cli, "link", "set", "eth0", "up"]);
      for (const addr of ["10.79.0.53/24", "10.79.0.66/24"])
        await must(["ip", "-n", net, "addr", "add", addr, "dev", "eth0"]);
      await must(["ip", "-n", net, "link", "set", "eth0", "up"]);
      const child = join(import.meta.dir, "../support/egress/spoof-child.ts");
      server = Bun.spawn(["ip", "netns", "exec", net, process.execPath, child, "server", "10.79.0.53", "10.79.0.66"], {
        stdout: "pipe",
        stderr: "inherit",
      });
      const reader = (server.stdout as ReadableStream<Uint8Array>).getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("ready");
      reader.releaseLock();
      const r = await run([
        "ip",
        "netns",
        "exec",
        cli,
        process.execPath,
        child,
        "resolve",
        "spoofed.test",
        "10.79.0.53",
      ]);
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout).addrs).toEqual(["10.77.0.41"]);
    } finally {
      server?.kill("SIGKILL");
      await server?.exited;
      await run(["ip", "netns", "del", net]);
      await run(["ip", "netns", "del", cli]);
    }
  });

  test("a name with a newline under a wildcard is answered but never learned; a host name is learned and pinned", async () => {
    const evil = "x\n10.77.0.40 blocked.test\n#.wild.test";
    const forwarded = await ask(evil);
    expect(forwarded?.records.map((r) => r.data)).toEqual(["10.77.0.40"]); // upstream's answer, passed on
    const learned = await ask("ok.wild.test");
    expect(learned?.records.map((r) => r.data)).toEqual(["10.77.0.11"]);
    await waitFor(() => hosts().includes("10.77.0.11 ok.wild.test"), 5000);
    await Bun.sleep(1500); // a second apply would have had time to write the other name too
    expect(hosts()).not.toContain("blocked.test");
    expect(await sets()).not.toContain("10.77.0.40");
    const block = hosts().slice(hosts().indexOf("# BEGIN"));
    for (const line of block.split("\n").slice(1, -1)) expect(line).toMatch(/^[0-9a-f.:]+ [a-z0-9.-]+$/);
  });

  test("a new name asked twice at once is answered pinned both times", async () => {
    const [a, b] = await Promise.all([ask("twice.wild.test"), ask("twice.wild.test")]);
    for (const r of [a, b]) expect(r?.records.map((x) => [x.data, x.ttl <= 60])).toEqual([["10.77.0.11", true]]);
  });

  test("a burst of new names under a wildcard: at most the cap is learned, the rest are answered from upstream, and applies for them come at most once a second", async () => {
    const before = applies();
    const t0 = performance.now();
    // Three clients, each asking its names one after the other (each waits for its answer).
    // Meanwhile ok.wild.test is asked for every half second, so it keeps its place (twice.wild.test,
    // learned just before, is well within the idle time).
    const answers: (Awaited<ReturnType<typeof ask>> | undefined)[] = [];
    let done = false;
    const keeper = (async () => {
      while (!done) await Promise.all([ask("ok.wild.test"), Bun.sleep(500)]);
    })();
    await Promise.all(
      [0, 1, 2].map(async (k) => {
        for (let j = 0; j < BURST / 3; j++)
          answers[k * (BURST / 3) + j] = await ask(`b${k * (BURST / 3) + j}.wild.test`);
      }),
    );
    done = true;
    await keeper;
    const ms = performance.now() - t0;
    const count = applies() - before;
    console.log(
      `${BURST} new wildcard names (3 clients asking in turn) answered in ${ms.toFixed(0)} ms with ${count} applies`,
    );
    answers.forEach((a, i) => expect(a?.records.map((r) => r.data)).toEqual([burstAddr(i)]));
    const pinnedAnswers = answers.flatMap((a, i) => (a!.records[0]!.ttl <= 60 ? [i] : []));
    await agent!.settled();
    const learned = Array.from({ length: BURST }, (_, i) => i).filter((i) =>
      hosts().includes(`${burstAddr(i)} b${i}.wild.test`),
    );
    expect(hosts()).toContain("10.77.0.11 ok.wild.test");
    expect(learned.length).toBe(MAX_LEARNED - 2); // ok.wild.test and twice.wild.test hold two places
    expect(pinnedAnswers).toEqual(learned); // the others were answered from upstream, unpinned
    const s = await sets();
    for (let i = 0; i < BURST; i++)
      expect(new RegExp(`^${burstAddr(i).replaceAll(".", "\\.")}\\b`, "m").test(s)).toBe(learned.includes(i));
    expect(count).toBeLessThanOrEqual(Math.floor(ms / 1000) + 1);
  }, 30_000);

  test("a learned name not asked for within the idle time is forgotten, hosts file and sets alike; one asked again stays", async () => {
    const t0 = Date.now();
    while (Date.now() - t0 < IDLE_MS + 2500) {
      expect((await ask("ok.wild.test"))?.records.map((r) => r.data)).toEqual(["10.77.0.11"]);
      await Bun.sleep(500);
    }
    await waitFor(() => !hosts().includes("b0.wild.test") && !hosts().includes("b1.wild.test"), 3000);
    expect(hosts()).toContain("10.77.0.11 ok.wild.test");
    expect(hosts()).not.toMatch(/b\d+\.wild\.test/);
    expect(await sets()).not.toContain("10.78.0.");
    // Forgotten names free their places: a new one is learned again.
    await ask(`b${BURST - 1}.wild.test`);
    await waitFor(() => hosts().includes(`${burstAddr(BURST - 1)} b${BURST - 1}.wild.test`), 5000);
  }, 40_000);

  test("uninstall gives the hosts file back byte for byte, though it had no final newline", async () => {
    await agent!.stop();
    agent = null;
    await uninstallEgress({ exec: hostExec(ns), hostsFile, stateFile: null });
    expect(hosts()).toBe(originalHosts);
  });
});

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await Bun.sleep(100);
  }
}
