/**
 * @module test/support/egress/topology
 * The egress tests' network, built only from namespaces this module creates (unique names; the
 * root namespace's interfaces, addresses, rules, sets and /etc/hosts are never touched):
 *
 *   hub (bridge br0, 10.77.0.0/24, fd77::/64)
 *    ├─ runner  .2   (runs the agent; a Docker-like bridge br-… 172.30.0.1/24 with containers
 *    │               c1, and c2 on a second network created later: MASQUERADE and DOCKER-USER
 *    │               exactly as dockerd sets them up)
 *    ├─ srvA    .11 .12 .13   fd77::11 ::12 ::13   (HTTP on :80)
 *    ├─ srvB    .21 .22 .23   fd77::21 ::22 ::23   (the round-robin name's servers)
 *    ├─ srvC    .40           fd77::40             (never allowed)
 *    ├─ builder .50           fd77::50             (a "builder": allowed only when pushed)
 *    └─ dns     .53           fd77::53             (answers the test zone round robin)
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { run, which } from "../../../src/host/run.ts";

const HERE = import.meta.dir;

/** Runs a host command; its stdout, or an error naming the command with its stderr. */
export async function sh(argv: string[], stdin?: string): Promise<string> {
  const r = await run(argv, stdin === undefined ? {} : { stdin });
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Why the egress suites cannot run on this machine, or null when they can. */
export const egressPrerequisiteMissing: string | null =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, iptables)"
    : !which("iptables-restore") || !which("ip6tables-restore") || !which("ipset") || !which("ip") || !which("curl")
      ? "needs iptables, ipset, iproute2 and curl"
      : null;

export interface Topology {
  ns: {
    hub: string;
    runner: string;
    srvA: string;
    srvB: string;
    srvC: string;
    builder: string;
    dns: string;
    c1: string;
    c2: string;
  };
  /** Creates the second container network (br-…, 172.31.0.0/24) and container c2 on it. */
  addSecondNetwork(): Promise<string>;
  /** curl from a namespace (as `asUid` when given): the body, or null when the connection failed
   * (refused: the policy's resets and ICMP errors come at once, so the timeouts are generous). */
  curl(ns: string, url: string, extra?: string[], asUid?: number): Promise<string | null>;
  setZone(names: Record<string, string[]>, ttl: number): Promise<void>;
  /** iptables-save, ip6tables-save and ipset list of the runner namespace, without counters and timestamps. */
  snapshot(): Promise<{ v4: string; v6: string; sets: string }>;
  hostsFile: string;
  bridge1: string;
  destroy(): Promise<void>;
}

export async function makeTopology(): Promise<Topology> {
  const id = Math.random().toString(16).slice(2, 8);
  const ns = {
    hub: `slw${id}hub`,
    runner: `slw${id}run`,
    srvA: `slw${id}a`,
    srvB: `slw${id}b`,
    srvC: `slw${id}c`,
    builder: `slw${id}bld`,
    dns: `slw${id}dns`,
    c1: `slw${id}c1`,
    c2: `slw${id}c2`,
  };
  const procs: Subprocess[] = [];
  const etcDirs: string[] = [];
  const inNs = (n: string, argv: string[], stdin?: string) => sh(["ip", "netns", "exec", n, ...argv], stdin);
  for (const n of Object.values(ns)) {
    await sh(["ip", "netns", "add", n]);
    await inNs(n, ["ip", "link", "set", "lo", "up"]);
  }
  const bridge1 = `br-${id}aaaa00`;
  const bridge2 = `br-${id}bbbb00`;
  try {
    await inNs(ns.hub, ["ip", "link", "add", "br0", "type", "bridge"]);
    await inNs(ns.hub, ["ip", "link", "set", "br0", "up"]);
    const hosts: [string, string[]][] = [
      [ns.runner, ["2"]],
      [ns.srvA, ["11", "12", "13"]],
      [ns.srvB, ["21", "22", "23"]],
      [ns.srvC, ["40"]],
      [ns.builder, ["50"]],
      [ns.dns, ["53"]],
    ];
    let i = 0;
    for (const [n, last] of hosts) {
      const port = `p${i++}`;
      await sh(["ip", "-n", ns.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n]);
      await sh(["ip", "-n", ns.hub, "link", "set", port, "master", "br0", "up"]);
      await sh(["ip", "-n", n, "link", "set", "eth0", "up"]);
      for (const l of last) {
        await sh(["ip", "-n", n, "addr", "add", `10.77.0.${l}/24`, "dev", "eth0"]);
        await sh(["ip", "-n", n, "addr", "add", `fd77::${l}/64`, "dev", "eth0", "nodad"]);
      }
    }
    // Name resolution inside the runner and the containers: `ip netns exec` bind-mounts these.
    for (const n of [ns.runner, ns.c1, ns.c2]) {
      const dir = join("/etc/netns", n);
      mkdirSync(dir, { recursive: true });
      etcDirs.push(dir);
      writeFileSync(join(dir, "hosts"), "127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
      writeFileSync(join(dir, "resolv.conf"), n === ns.runner ? "nameserver 10.77.0.53\n" : "nameserver 172.30.0.1\n");
    }
    // Docker's view of a user-defined network, by hand: a bridge, containers' namespaces on veths,
    // forwarding, MASQUERADE and the DOCKER-USER chain that dockerd creates.
    await inNs(ns.runner, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await inNs(ns.runner, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (const f of ["iptables-restore", "ip6tables-restore"]) {
      const v6 = f.startsWith("ip6");
      await inNs(
        ns.runner,
        [f, "--noflush"],
        [
          "*nat",
          `-A POSTROUTING -s ${v6 ? "fd30::/64" : "172.30.0.0/16"} ! -o br-+ -j MASQUERADE`,
          `-A POSTROUTING -s ${v6 ? "fd31::/64" : "172.31.0.0/16"} ! -o br-+ -j MASQUERADE`,
          "COMMIT",
          "*filter",
          ":DOCKER-USER - [0:0]",
          "-A DOCKER-USER -j RETURN",
          "-A FORWARD -j DOCKER-USER",
          // Someone else's rule, which must survive everything Slipway does.
          `-A OUTPUT -p tcp --dport 9 -j ACCEPT`,
          "COMMIT",
          "",
        ].join("\n"),
      );
    }
    await addContainerNetwork(ns.runner, bridge1, ns.c1, "172.30.0", "fd30:");

    for (const [n, name] of [
      [ns.srvA, "A"],
      [ns.srvB, "B"],
      [ns.srvC, "C"],
      [ns.builder, "builder"],
    ] as const) {
      procs.push(await startReady(["ip", "netns", "exec", n, process.execPath, join(HERE, "http-server.ts"), name]));
    }
    const dnsProc = await startReady(
      ["ip", "netns", "exec", ns.dns, process.execPath, join(HERE, "dns-server.ts")],
      true,
    );
    procs.push(dnsProc);
    const dnsOut = lines(dnsProc);
    await dnsOut.next("ready");

    const topo: Topology = {
      ns,
      bridge1,
      hostsFile: join("/etc/netns", ns.runner, "hosts"),
      async addSecondNetwork() {
        await addContainerNetwork(ns.runner, bridge2, ns.c2, "172.31.0", "fd31:");
        return bridge2;
      },
      async curl(n, url, extra = [], asUid) {
        const user = asUid === undefined ? [] : ["setpriv", `--reuid=${asUid}`, `--regid=${asUid}`, "--clear-groups"];
        // Generous timeouts: a refusal is a reset or an ICMP error, at once; only a loaded machine is slow.
        const r = await run([
          "ip",
          "netns",
          "exec",
          n,
          ...user,
          "curl",
          "-sS",
          "--max-time",
          "30",
          "--connect-timeout",
          "15",
          ...extra,
          url,
        ]);
        return r.code === 0 ? r.stdout : null;
      },
      async setZone(names, ttl) {
        const sink = dnsProc.stdin as import("bun").FileSink;
        sink.write(`${JSON.stringify({ names, ttl })}\n`);
        await sink.flush();
        await dnsOut.next("ok");
      },
      async snapshot() {
        const clean = (t: string) =>
          t
            .split("\n")
            .filter((l) => !l.startsWith("#"))
            .map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"))
            .join("\n");
        return {
          v4: clean(await inNs(ns.runner, ["iptables-save"])),
          v6: clean(await inNs(ns.runner, ["ip6tables-save"])),
          sets: await inNs(ns.runner, ["ipset", "list"]),
        };
      },
      async destroy() {
        for (const p of procs) p.kill("SIGKILL");
        await Promise.all(procs.map((p) => p.exited));
        for (const n of Object.values(ns)) await run(["ip", "netns", "del", n]);
        for (const d of etcDirs) rmSync(d, { recursive: true, force: true });
      },
    };
    return topo;
  } catch (e) {
    for (const p of procs) p.kill("SIGKILL");
    for (const n of Object.values(ns)) await run(["ip", "netns", "del", n]);
    for (const d of etcDirs) rmSync(d, { recursive: true, force: true });
    throw e;
  }
}

async function addContainerNetwork(
  runner: string,
  bridge: string,
  container: string,
  v4: string,
  v6: string,
): Promise<void> {
  const veth = `v${container.slice(-6)}`;
  await sh(["ip", "-n", runner, "link", "add", bridge, "type", "bridge"]);
  await sh(["ip", "-n", runner, "addr", "add", `${v4}.1/24`, "dev", bridge]);
  await sh(["ip", "-n", runner, "addr", "add", `${v6}:1/64`, "dev", bridge, "nodad"]);
  await sh(["ip", "-n", runner, "link", "set", bridge, "up"]);
  await sh(["ip", "-n", runner, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", container]);
  await sh(["ip", "-n", runner, "link", "set", veth, "master", bridge, "up"]);
  await sh(["ip", "-n", container, "link", "set", "eth0", "up"]);
  await sh(["ip", "-n", container, "addr", "add", `${v4}.2/24`, "dev", "eth0"]);
  await sh(["ip", "-n", container, "addr", "add", `${v6}:2/64`, "dev", "eth0", "nodad"]);
  await sh(["ip", "-n", container, "route", "add", "default", "via", `${v4}.1`]);
  await sh(["ip", "-n", container, "-6", "route", "add", "default", "via", `${v6}:1`]);
}

/** Reads a child's stdout line by line. */
export function lines(p: Subprocess) {
  const decoder = new TextDecoder();
  const queue: string[] = [];
  let waiter = null as (() => void) | null;
  const done = (async () => {
    let rest = "";
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
      rest += decoder.decode(chunk);
      let i: number;
      while ((i = rest.indexOf("\n")) >= 0) {
        queue.push(rest.slice(0, i));
        rest = rest.slice(i + 1);
        waiter?.();
      }
    }
  })();
  return {
    all: queue,
    /** Resolves once the child's stdout ended and every line of it is in `all`. */
    done,
    /** Waits for (and consumes up to) a line containing `text`. */
    async next(text: string, timeoutMs = 10_000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex((l) => l.includes(text));
        if (i >= 0) return queue.splice(0, i + 1)[i]!;
        if (Date.now() > deadline)
          throw new Error(`no line with '${text}' within ${timeoutMs} ms (got ${queue.slice(-5).join(" | ")})`);
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 50);
        });
      }
    },
  };
}

async function startReady(argv: string[], withStdin = false): Promise<Subprocess> {
  const p = Bun.spawn(argv, { stdin: withStdin ? "pipe" : "ignore", stdout: "pipe", stderr: "inherit" });
  if (!withStdin) {
    const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    if (!value || !new TextDecoder().decode(value).includes("ready"))
      throw new Error(`${argv.join(" ")} did not start`);
    reader.releaseLock();
    return p;
  }
  return p;
}
