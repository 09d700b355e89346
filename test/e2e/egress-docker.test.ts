/**
 * @module test/e2e/egress-docker
 * docker:NAME scopes with the real dockerd: a network made by Docker, removed and re-created
 * while the agent runs, with real connections attempted in the gap, and containers dockerd runs
 * on it. The agent runs in this host's namespace (Docker's bridges live there) with its own
 * ruleset instance, so nothing of another ruleset is touched; for the gap right after a
 * re-creation, the "container" is a namespace this test plugs into Docker's new bridge at once
 * (a real container takes longer to start than the agent takes to react), and real containers
 * (a busybox image made here) show the rest. The only destination is a listener in another
 * namespace this test creates; the policy denies only that listener, so a bridge briefly held by
 * the new-network chain loses nothing else. The agent's periodic re-check is set far beyond the
 * tests' length, so whatever follows a network change here came from Docker's events.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import Docker from "dockerode";
import { startEgressAgent, uninstallEgress, type EgressAgent } from "../../src/agent/agent.ts";
import { hostExec } from "../../src/host/exec.ts";
import { dockerNetworks } from "../../src/agent/docker.ts";
import type { AgentPolicy } from "../../src/wire/egress/policy.ts";
import { run, which } from "../../src/host/run.ts";
import { createLogger, silentLogger } from "../../src/log/logger.ts";
import { integrationSuite } from "../support/integration.ts";
import { ensureBusyboxImage, httpFrom, removeTestContainers, runContainer } from "../support/egress/containers.ts";
import { sh, lines } from "../support/egress/topology.ts";

const missing =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, iptables)"
    : !existsSync("/var/run/docker.sock")
      ? "needs dockerd (/var/run/docker.sock)"
      : !which("iptables-restore") || !which("ipset") || !which("ip") || !which("curl")
        ? "needs iptables, ipset, iproute2 and curl"
        : null;

integrationSuite(
  "egress: docker:NAME with the real dockerd fails closed while the network is re-created",
  missing,
  () => {
    const id = Math.random().toString(16).slice(2, 8);
    const instance = `t${id}`;
    const network = `slwegress-${id}`;
    const other = `slwegress-${id}-other`;
    const ns = { server: `slw${id}ds`, container: `slw${id}dc`, container2: `slw${id}dd` };
    const links = { server: `slw${id}h`, container: `slw${id}v`, container2: `slw${id}w` };
    // A /30 for the listener's namespace, its third octet from the id (any free one does).
    const octet = parseInt(id.slice(0, 2), 16);
    const [hostSide, serverAddr] = [`10.215.${octet}.1`, `10.215.${octet}.2`];
    const url = `http://${serverAddr}/`;
    const docker = new Docker();
    const dir = mkdtempSync(join(tmpdir(), "slipway-egress-docker-"));
    const hostsFile = join(dir, "hosts");
    const exec = hostExec();
    let server: Subprocess | null = null;
    let agent: EgressAgent | null = null;
    const containers: string[] = [];

    const bridgeOf = async (name: string) =>
      `br-${((await docker.getNetwork(name).inspect()) as { Id: string }).Id.slice(0, 12)}`;
    /** Docker's choice of subnet and gateway for a network. */
    const ipamOf = async (name: string) => {
      const n = (await docker.getNetwork(name).inspect()) as {
        IPAM: { Config: { Subnet: string; Gateway: string }[] };
      };
      const c = n.IPAM.Config[0]!;
      return { prefix: c.Subnet.split("/")[1]!, gateway: c.Gateway, addr: c.Gateway.replace(/\.\d+$/, ".200") };
    };
    /** Plugs a namespace into a Docker network's bridge, the way a container's veth is. */
    async function plug(
      name: string,
      link: string,
      nsName: string,
      known?: { bridge: string; ipam: Awaited<ReturnType<typeof ipamOf>> },
    ): Promise<void> {
      const bridge = known?.bridge ?? (await bridgeOf(name));
      const { prefix, gateway, addr } = known?.ipam ?? (await ipamOf(name));
      await sh(["ip", "link", "set", link, "master", bridge, "up"]);
      await sh(["ip", "-n", nsName, "addr", "flush", "dev", "eth0"]);
      await sh(["ip", "-n", nsName, "addr", "add", `${addr}/${prefix}`, "dev", "eth0"]);
      await sh(["ip", "-n", nsName, "route", "replace", "default", "via", gateway]);
    }
    /** The listener's body, or null when refused (a reset, at once: the timeout is only for a loaded machine). */
    const curl = async (from: string, timeout = "10") => {
      const r = await run([
        "ip",
        "netns",
        "exec",
        from,
        "curl",
        "-sS",
        "--max-time",
        timeout,
        "--connect-timeout",
        timeout,
        url,
      ]);
      return r.code === 0 ? r.stdout : null;
    };
    const saved = async () => (await sh(["iptables-save", "-t", "filter"])).split("\n");

    beforeAll(async () => {
      await sh(["ip", "netns", "add", ns.server]);
      await sh(["ip", "-n", ns.server, "link", "set", "lo", "up"]);
      await sh(["ip", "link", "add", links.server, "type", "veth", "peer", "name", "eth0", "netns", ns.server]);
      await sh(["ip", "addr", "add", `${hostSide}/30`, "dev", links.server]);
      await sh(["ip", "link", "set", links.server, "up"]);
      await sh(["ip", "-n", ns.server, "addr", "add", `${serverAddr}/30`, "dev", "eth0"]);
      await sh(["ip", "-n", ns.server, "link", "set", "eth0", "up"]);
      await sh(["ip", "-n", ns.server, "route", "add", "default", "via", hostSide]);
      for (const [n, l] of [
        [ns.container, links.container],
        [ns.container2, links.container2],
      ] as const) {
        await sh(["ip", "netns", "add", n]);
        await sh(["ip", "-n", n, "link", "set", "lo", "up"]);
        await sh(["ip", "link", "add", l, "type", "veth", "peer", "name", "eth0", "netns", n]);
        await sh(["ip", "-n", n, "link", "set", "eth0", "up"]);
      }
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
      writeFileSync(hostsFile, "127.0.0.1 localhost\n");
      await docker.createNetwork({ Name: network, Driver: "bridge" });
      await plug(network, links.container, ns.container);
    }, 60_000);

    afterAll(async () => {
      await agent?.stop();
      await uninstallEgress({ exec, hostsFile, stateFile: null, instance }).catch((e) =>
        console.error("uninstall:", e),
      );
      await removeTestContainers(docker, containers);
      for (const n of [network, other])
        await docker
          .getNetwork(n)
          .remove()
          .catch(() => {});
      server?.kill("SIGKILL");
      await server?.exited;
      for (const l of Object.values(links)) await run(["ip", "link", "del", l]);
      for (const n of Object.values(ns)) await run(["ip", "netns", "del", n]);
      rmSync(dir, { recursive: true, force: true });
      const left = (await saved()).filter((l) => l.includes(instance.toUpperCase()));
      expect(left).toEqual([]);
    });

    const policy = (): AgentPolicy => ({
      etag: "e1",
      org_id: "org_x",
      host_id: "rnh_x",
      mode: "enforce",
      default_action: "allow",
      rules: [{ action: "deny", target: `${serverAddr}/32`, ports: null }],
      scopes: [`docker:${network}`],
      always_allow: [],
      always_allow_hosts: [],
    });
    const start = () =>
      startEgressAgent({
        source: {
          fetch: async (etag, wait, signal) => {
            if (etag === policy().etag)
              await new Promise<void>((r) => (signal.addEventListener("abort", () => r()), setTimeout(r, wait * 1000)));
            return policy();
          },
          reportStatus: async () => {},
          reportEvents: async () => {},
        },
        exec,
        log: process.env.EGRESS_DEBUG ? createLogger({ level: "debug", format: "json" }) : silentLogger,
        hostsFile,
        stateFile: null,
        instance,
        nflogGroup: 5329,
        graceMs: 1000,
        dnsServers: [],
        docker: dockerNetworks(docker),
        watchdogMs: 3_600_000, // only Docker's events can make it look networks up again
      });
    const jumpFor = (bridge: string) =>
      `-A DOCKER-USER -i ${bridge} ! -o ${bridge} -j SLIPWAY_EGRESS_${instance.toUpperCase()}`;
    /** Removes the network and creates it again (same subnet), plugging the "container" into the
     * new bridge as soon as Docker has made it; returns the new bridge and when it was plugged. */
    async function recreate(): Promise<{ bridge: string; t0: number; plugged: number }> {
      const ipam = await ipamOf(network);
      await docker.getNetwork(network).remove();
      const t0 = performance.now();
      const created = (await docker.createNetwork({
        Name: network,
        Driver: "bridge",
        IPAM: { Config: [{ Subnet: `${ipam.gateway.replace(/\.\d+$/, ".0")}/${ipam.prefix}`, Gateway: ipam.gateway }] },
      })) as { id: string };
      const bridge = `br-${created.id.slice(0, 12)}`;
      await plug(network, links.container, ns.container, { bridge, ipam });
      return { bridge, t0, plugged: performance.now() - t0 };
    }

    test("removed and re-created, the network is never unfiltered: a connection in the gap is refused, and the new bridge gets its own jump from Docker's event", async () => {
      expect(await curl(ns.container)).toBe("S"); // before the agent: open
      agent = await start();
      const first = await bridgeOf(network);
      await waitFor(async () => (await saved()).includes(jumpFor(first)), 120_000);
      expect(await curl(ns.container)).toBeNull(); // denied

      // Remove and re-create it, plug the "container" into the new bridge at once, and connect
      // again and again through the first seconds: the old code left it open until its 2 s poll.
      const { bridge: second, t0, plugged } = await recreate();
      expect(second).not.toBe(first);
      // Until the new bridge has its own jump, and a few more after: a refusal comes at once, so a
      // generous timeout costs nothing and would let a leaked connection through.
      const attempts: (string | null)[] = [];
      let jumpAfter = Infinity;
      let after = 0;
      const deadline = performance.now() + 120_000;
      while (after < 3) {
        if (performance.now() > deadline)
          throw new Error(`the new bridge ${second} got no jump of its own within 120 s`);
        const at = performance.now() - t0;
        attempts.push(await curl(ns.container));
        if (process.env.EGRESS_DEBUG) console.log(`attempt at ${at.toFixed(0)} ms: ${attempts.at(-1)}`);
        if (jumpAfter === Infinity && (await saved()).includes(jumpFor(second))) jumpAfter = performance.now() - t0;
        if (jumpAfter !== Infinity) after++;
      }
      console.log(
        `re-created network: plugged in ${plugged.toFixed(0)} ms after the remove; ${attempts.length} connections, ${attempts.filter((a) => a === null).length} refused; its own jump ${(jumpAfter - plugged).toFixed(0)} ms after it existed`,
      );
      if (process.env.EGRESS_DEBUG)
        console.log(
          (await saved()).filter((l) => /DOCKER-USER|SLIPWAY/.test(l)).join("\n"),
          await sh(["ipset", "list", "-t"]),
          await sh(["ipset", "list", `slw${instance}_d0_4`]),
        );
      expect(attempts.filter((a) => a !== null)).toEqual([]);
      const rules = await saved();
      expect(rules).not.toContain(jumpFor(first));
      expect(rules).toContain(`-A DOCKER-USER -i br-+ ! -o br-+ -j SLIPWAY_NEWNET_${instance.toUpperCase()}`);
    }, 180_000);

    test("with the agent stopped (or slow), a network re-created meanwhile is still refused; restarted, the agent gives it its own jump", async () => {
      await agent!.stop(); // the rules stay in force
      agent = null;
      const { bridge } = await recreate();
      for (let i = 0; i < 5; i++) expect(await curl(ns.container)).toBeNull();
      expect(await saved()).not.toContain(jumpFor(bridge)); // refused by the new-network chain alone
      agent = await start();
      await waitFor(async () => (await saved()).includes(jumpFor(bridge)), 120_000);
      expect(await curl(ns.container)).toBeNull();
    }, 180_000);

    test("another network created meanwhile is held by the policy only until Docker's event names it, then passes", async () => {
      await docker.createNetwork({ Name: other, Driver: "bridge" });
      const t0 = performance.now();
      const bridge = await bridgeOf(other);
      await plug(other, links.container2, ns.container2);
      await waitFor(async () => (await curl(ns.container2)) === "S", 120_000);
      console.log(`another network: its connections pass after ${(performance.now() - t0).toFixed(0)} ms`);
      expect(await saved()).toContain(`-A SLIPWAY_NEWNET_${instance.toUpperCase()} -i ${bridge} -j RETURN`);
      expect(await curl(ns.container)).toBeNull(); // the scope's network stays filtered
    }, 180_000);

    test("containers dockerd runs: refused on the scope's network, through on another", async () => {
      const image = await ensureBusyboxImage(docker);
      const inScope = await runContainer(docker, image, network, `slwegress-${id}-in`);
      containers.push(inScope.id);
      const outside = await runContainer(docker, image, other, `slwegress-${id}-out`);
      containers.push(outside.id);
      expect(await httpFrom(docker, inScope.id, serverAddr)).toBeNull();
      expect(await httpFrom(docker, outside.id, serverAddr)).toBe("S");
    }, 180_000);

    test("the network removed and re-created under a running agent, with a container on it again: refused from its first connection, and the new bridge gets its own jump", async () => {
      const before = await bridgeOf(network);
      await removeTestContainers(docker, containers.splice(0, 1)); // the scope's container: a network in use cannot be removed
      await docker.getNetwork(network).remove();
      await docker.createNetwork({ Name: network, Driver: "bridge" });
      const bridge = await bridgeOf(network);
      expect(bridge).not.toBe(before);
      const again = await runContainer(docker, await ensureBusyboxImage(docker), network, `slwegress-${id}-again`);
      containers.push(again.id);
      expect(await httpFrom(docker, again.id, serverAddr)).toBeNull();
      await waitFor(async () => (await saved()).includes(jumpFor(bridge)), 120_000);
      expect(await httpFrom(docker, again.id, serverAddr)).toBeNull();
      const rules = await saved();
      expect(rules).not.toContain(jumpFor(before));
      expect(
        rules.filter((l) => l.startsWith("-A DOCKER-USER") && l.includes(`SLIPWAY_EGRESS_${instance.toUpperCase()}`)),
      ).toEqual([jumpFor(bridge)]);
    }, 180_000);
  },
);

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await Bun.sleep(50);
  }
}
