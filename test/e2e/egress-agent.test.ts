/**
 * @module test/e2e/egress-agent
 * `slipway agent`, the compiled binary, on its production path: a process in a runner namespace
 * this test creates, holding an agent token, fetching its policy from the compiled `serve` over
 * HTTPS (the appliance's CA, its long poll), applying it in that namespace and reporting its
 * status and events back over HTTP, where `slipway egress apply-status|events` show them. Real
 * connections from the runner namespace decide every assertion (see
 * test/support/egress/topology.ts); the runner reaches `serve` over a veth pair to this host.
 * As under systemd (Type=notify), it says READY=1 only once its policy holds, and pings the watchdog.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { run } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
import { integrationSuite } from "../support/integration.ts";
import { listenForNotifications } from "../support/notify-socket.ts";
import { egressPrerequisiteMissing, sh, makeTopology, type Topology } from "../support/egress/topology.ts";
import { serve, type Served } from "../support/serve.ts";

const missing = egressPrerequisiteMissing;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await Bun.sleep(100);
  }
}

interface HostView {
  id: string;
  applied_revision: string | null;
  applied_ok: boolean | null;
  applied_error: string | null;
  dns_resolvers: string[];
  last_seen_at: string | null;
}
interface EventView {
  action: string;
  host_id: string;
  scope: string;
  source: string;
  dst: string;
  port: number;
  protocol: string;
  count: number;
}

integrationSuite("egress: `slipway agent` against `serve` over HTTPS", missing, () => {
  const bin = slipwayBinary();
  const work = mkdtempSync(join(tmpdir(), "slipway-egress-agent-"));
  const tokenFile = join(work, "agent-token");
  const stateFile = join(work, "agent", "policy.json");
  let topo: Topology;
  let server: Served;
  let apiUrl: string;
  let link = "";
  let agent: { proc: Subprocess; logs: () => string } | null = null;
  let hostId = "";
  let agentToken = "";
  let baseline: { v4: string; v6: string; sets: string; hosts: string };
  const notify = listenForNotifications(join(work, "notify.sock"));

  const admin = () => readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
  async function cli(args: string[]) {
    const p = Bun.spawn(
      [bin, ...args, "--server", server.url, "--cacert", join(server.dataDir, "ca.pem"), "--token", admin()],
      {
        stdout: "pipe",
        stderr: "pipe",
        // A path socket (an abstract one would stay in this namespace): systemd's Type=notify.
        env: { PATH: process.env.PATH ?? "", HOME: work, NOTIFY_SOCKET: notify.address, WATCHDOG_USEC: "200000" },
      },
    );
    const [stdout, stderr, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    if (code !== 0) throw new Error(`slipway ${args.join(" ")}: exit ${code}: ${stderr}`);
    return stdout;
  }
  const hostView = async () =>
    (JSON.parse(await cli(["egress", "apply-status", "--org", "acme", "--json"])) as HostView[]).find(
      (h) => h.id === hostId,
    )!;
  const events = async () => JSON.parse(await cli(["egress", "events", "--org", "acme", "--json"])) as EventView[];
  /** The policy as the appliance hands it to this host's agent now (its etag names it). */
  const currentEtag = async () =>
    (
      (await (
        await server.get("/api/v1/egress/agent/policy", { headers: { authorization: `Bearer ${agentToken}` } })
      ).json()) as { etag: string }
    ).etag;
  /** Waits until the agent reported (over HTTP) having applied the appliance's policy as it is now. */
  async function applied(): Promise<HostView> {
    const etag = await currentEtag();
    let last: HostView | null = null;
    await waitFor(`the agent reporting etag ${etag} applied`, async () => {
      last = await hostView();
      return last.applied_revision === etag && last.applied_ok === true;
    }).catch((e) => {
      throw new Error(
        `${(e as Error).message} (last: ${JSON.stringify(last)}; agent log: ${agent?.logs().slice(-2000)})`,
      );
    });
    return last!;
  }
  /** curl from the runner namespace with generous timeouts: a refusal is a reset, at once. */
  const curl = (url: string) => topo.curl(topo.ns.runner, url, ["--connect-timeout", "15", "--max-time", "30"]);

  function startAgent(): { proc: Subprocess; logs: () => string } {
    const proc = Bun.spawn(
      [
        "ip",
        "netns",
        "exec",
        topo.ns.runner,
        bin,
        "agent",
        "--server",
        apiUrl,
        "--cacert",
        join(server.dataDir, "ca.pem"),
        "--token-file",
        tokenFile,
        "--state-file",
        stateFile,
        "--hosts-file",
        topo.hostsFile,
      ],
      {
        stdout: "pipe",
        stderr: "pipe",
        // A path socket (an abstract one would stay in this namespace): systemd's Type=notify.
        env: { PATH: process.env.PATH ?? "", HOME: work, NOTIFY_SOCKET: notify.address, WATCHDOG_USEC: "200000" },
      },
    );
    let logs = "";
    const decoder = new TextDecoder();
    void (async () => {
      for await (const chunk of proc.stderr) logs += decoder.decode(chunk);
    })();
    return { proc, logs: () => logs };
  }

  beforeAll(async () => {
    topo = await makeTopology();
    await topo.setZone({ "name.test": ["10.77.0.21"] }, 60);
    // The runner reaches the appliance over its own link to this host; the appliance's
    // certificate names the address it is dialled on (--public-url).
    const id = topo.ns.runner.slice(3, 9);
    const octet = parseInt(id.slice(0, 2), 16);
    const [hostSide, runnerSide] = [`10.216.${octet}.1`, `10.216.${octet}.2`];
    link = `slw${id}api`;
    await sh(["ip", "link", "add", link, "type", "veth", "peer", "name", "api0", "netns", topo.ns.runner]);
    await sh(["ip", "addr", "add", `${hostSide}/30`, "dev", link]);
    await sh(["ip", "link", "set", link, "up"]);
    await sh(["ip", "-n", topo.ns.runner, "addr", "add", `${runnerSide}/30`, "dev", "api0"]);
    await sh(["ip", "-n", topo.ns.runner, "link", "set", "api0", "up"]);
    server = await serve(bin, join(work, "data"), [], {}, { listenHost: "0.0.0.0", publicHost: hostSide });
    apiUrl = `https://${hostSide}:${new URL(server.url).port}`;
    baseline = { ...(await topo.snapshot()), hosts: readFileSync(topo.hostsFile, "utf8") };

    await cli(["orgs", "create", "--slug", "acme", "--name", "Acme"]);
    await cli(["egress", "set-mode", "--org", "acme", "enforce"]);
    await cli(["egress", "add", "--org", "acme", "deny", "10.77.0.40"]);
    const added = JSON.parse(
      await cli(["egress", "add-host", "--org", "acme", "--name", "runner-1", "--scope", "host", "--json"]),
    ) as { id: string; token: string };
    hostId = added.id;
    agentToken = added.token;
    writeFileSync(tokenFile, `${agentToken}\n`, { mode: 0o600 });
  }, 300_000);

  afterAll(async () => {
    if (agent) {
      agent.proc.kill("SIGKILL");
      await agent.proc.exited;
      await run([
        "ip",
        "netns",
        "exec",
        topo.ns.runner,
        bin,
        "agent",
        "uninstall",
        "--hosts-file",
        topo.hostsFile,
        "--state-file",
        stateFile,
      ]);
    }
    await server?.stop();
    if (link) await run(["ip", "link", "del", link]);
    await topo?.destroy();
    notify.close();
    rmSync(work, { recursive: true, force: true });
  });

  test("the agent fetches its policy with its token, applies it in its namespace and reports it applied", async () => {
    expect(await curl("http://10.77.0.40/")).toBe("C"); // before the agent: open
    agent = startAgent();
    // systemd's READY=1 comes once the policy is in the kernel: the deny already holds then.
    await notify.waitFor((t) => t.startsWith("READY=1\nSTATUS=enforcing"), 120_000);
    expect(await curl("http://10.77.0.40/")).toBeNull();
    await notify.waitFor((t) => t === "WATCHDOG=1");
    const h = await applied();
    expect(h.applied_error).toBeNull();
    expect(h.last_seen_at).not.toBeNull();
    // The runner namespace's resolver (its /etc/resolv.conf), allowed for DNS only, as the agent reported it.
    expect(h.dns_resolvers).toEqual(["10.77.0.53"]);
    expect(await curl("http://10.77.0.40/")).toBeNull();
    expect(await curl("http://10.77.0.11/")).toBe("A");
    expect((await topo.snapshot()).v4).toContain("-A OUTPUT -j SLIPWAY_EGRESS");
    // The last good policy is kept on disk, for when the appliance is unreachable.
    expect((JSON.parse(readFileSync(stateFile, "utf8")) as { host_id: string }).host_id).toBe(hostId);
  }, 300_000);

  test("a policy change on serve reaches the running agent; under default deny it still reaches serve", async () => {
    await cli(["egress", "set-default", "--org", "acme", "deny"]);
    await cli(["egress", "add", "--org", "acme", "allow", "10.77.0.8/30"]);
    await cli(["egress", "add", "--org", "acme", "allow", "name.test"]);
    await applied();
    expect(await curl("http://10.77.0.11/")).toBe("A"); // .8/30: .8 to .11
    expect(await curl("http://10.77.0.12/")).toBeNull(); // default deny
    expect(await curl("http://name.test/")).toBe("B"); // resolved by the agent, pinned in the runner's hosts file
    expect(readFileSync(topo.hostsFile, "utf8")).toContain("10.77.0.21 name.test");
    expect(await curl("http://10.77.0.22/")).toBeNull(); // the same server, an address the name does not have
    // With '*' denied, the next change still arrives: the appliance's address is always allowed.
    await cli(["egress", "remove", "--org", "acme", "10.77.0.8/30"]);
    await applied();
    expect(await curl("http://10.77.0.11/")).toBeNull();
    expect(await curl("http://name.test/")).toBe("B");
  }, 300_000);

  test("would-be drops in monitor mode and refusals in enforce mode reach serve as events", async () => {
    await cli(["egress", "set-mode", "--org", "acme", "monitor"]);
    await applied();
    expect(await curl("http://10.77.0.12/")).toBe("A"); // denied by default, let through
    let seen: EventView[] = [];
    await waitFor("events for 10.77.0.12 and 10.77.0.40", async () => {
      seen = await events();
      return (
        seen.some((e) => e.action === "would-block" && e.dst === "10.77.0.12") &&
        seen.some((e) => e.action === "blocked" && e.dst === "10.77.0.40")
      );
    }).catch((e) => {
      throw new Error(
        `${(e as Error).message} (so far ${JSON.stringify(seen)}; agent log: ${agent?.logs().slice(-2000)})`,
      );
    });
    expect(seen.filter((e) => e.action === "would-block" && e.dst === "10.77.0.12")).toEqual([
      expect.objectContaining({ host_id: hostId, scope: "host", source: "uid:0", port: 80, protocol: "tcp", count: 1 }),
    ]);
    // The first test's refusal, in enforce mode.
    expect(seen.find((e) => e.action === "blocked" && e.dst === "10.77.0.40")).toMatchObject({
      host_id: hostId,
      scope: "host",
      source: "uid:0",
      port: 80,
    });
  }, 300_000);

  test("stopped, the agent leaves the rules in force; `slipway agent uninstall` gives the namespace back exactly", async () => {
    await cli(["egress", "set-mode", "--org", "acme", "enforce"]);
    await applied();
    agent!.proc.kill("SIGTERM");
    expect(await agent!.proc.exited).toBe(0);
    agent = null;
    expect(await curl("http://10.77.0.12/")).toBeNull(); // fail closed
    expect(await curl("http://name.test/")).toBe("B");
    const r = await run([
      "ip",
      "netns",
      "exec",
      topo.ns.runner,
      bin,
      "agent",
      "uninstall",
      "--hosts-file",
      topo.hostsFile,
      "--state-file",
      stateFile,
    ]);
    expect(r.code).toBe(0);
    const s = await topo.snapshot();
    expect(s.v4).toBe(baseline.v4);
    expect(s.v6).toBe(baseline.v6);
    expect(s.sets).toBe(baseline.sets);
    expect(readFileSync(topo.hostsFile, "utf8")).toBe(baseline.hosts);
    expect(existsSync(stateFile)).toBe(false);
    expect(await curl("http://10.77.0.12/")).toBe("A");
  }, 300_000);
});
