/**
 * @module test/e2e/egress-local
 * `serve` with egress.local_agent, the compiled binary on this host: an organization naming a
 * runner host `local` with scope `host` gets nothing on the appliance host's firewall; once the
 * administrator designates the host with a docker:NAME scope (a real network made by dockerd), the
 * appliance host enforces exactly that scope, on real containers dockerd runs there: their
 * connections are refused in enforce mode and reported in monitor mode, a policy change reaches
 * serve's in-process agent without a restart, and ending the designation takes the scope away.
 * The policy's default is allow and its only rule denies a listener in a namespace this test
 * creates, so even applied too widely it could refuse nothing else; its own ruleset instance is
 * removed at the end.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { uninstallEgress } from "../../src/agent/agent.ts";
import { hostExec } from "../../src/host/exec.ts";
import { run, which } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import {
  ensureBusyboxImage,
  httpFrom,
  makeListener,
  removeTestContainers,
  runContainer,
  type Listener,
} from "../support/egress/containers.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const missing =
  process.getuid?.() !== 0
    ? "needs root (iptables)"
    : !existsSync("/var/run/docker.sock")
      ? "needs dockerd (/var/run/docker.sock)"
      : !which("iptables-restore") || !which("ipset")
        ? "needs iptables and ipset"
        : null;

integrationSuite("egress: runner hosts on the appliance host are the administrator's to designate", missing, () => {
  const bin = slipwayBinary();
  const work = mkdtempSync(join(tmpdir(), "slipway-egress-local-"));
  const hostsFile = join(work, "hosts");
  writeFileSync(hostsFile, "127.0.0.1 localhost\n");
  const id = Math.random().toString(16).slice(2, 8);
  const network = `slwlocal-${id}`;
  const otherNetwork = `slwlocal-${id}-other`;
  const containers: string[] = [];
  let listener: Listener | null = null;
  let hostId = "";
  const docker = new Docker();
  // The first local host's ruleset instance is "0": SLIPWAY_EGRESS_0.
  const env = {
    SLIPWAY_EGRESS_LOCAL_AGENT: "true",
    SLIPWAY_EGRESS_HOSTS_FILE: hostsFile,
    SLIPWAY_EGRESS_NFLOG_GROUP: String(20000 + Math.floor(Math.random() * 10000)),
  };
  let server: Served | null = null;
  const start = async () => (server = await serve(bin, join(work, "data"), [], env));
  const admin = () => readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
  const cli = async (args: string[]) => {
    const p = Bun.spawn(
      [bin, ...args, "--server", server!.url, "--cacert", join(work, "data", "ca.pem"), "--token", admin()],
      { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "", HOME: work } },
    );
    const [stdout, stderr, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { stdout, stderr, code };
  };
  const ours = async () =>
    (await run(["iptables-save", "-t", "filter"])).stdout
      .split("\n")
      .filter((l) => l.includes("SLIPWAY_EGRESS_0") || l.includes("SLIPWAY_NEWNET_0"));

  afterAll(async () => {
    await server?.stop();
    await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
    await uninstallEgress({ exec: hostExec(), hostsFile, stateFile: null, instance: "0" });
    await removeTestContainers(docker, containers);
    for (const n of [network, otherNetwork])
      await docker
        .getNetwork(n)
        .remove()
        .catch(() => {});
    await listener?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  test("a host the organization names 'local' is not enforced; the administrator's designation is, with the administrator's scope only", async () => {
    expect(await ours()).toEqual([]);
    await start();
    expect((await cli(["orgs", "create", "--slug", "tenant", "--name", "Tenant"])).code).toBe(0);
    expect((await cli(["egress", "set-mode", "--org", "tenant", "monitor"])).code).toBe(0);
    const added = await cli([
      "egress",
      "add-host",
      "--org",
      "tenant",
      "--name",
      "local",
      "--scope",
      "host",
      "--scope",
      "docker:*",
      "--json",
    ]);
    expect(added.code).toBe(0);
    const { id } = JSON.parse(added.stdout) as { id: string };
    hostId = id;
    // Local hosts are picked up at start.
    await server!.stop();
    await start(); // ready only once its local agents started (none here)
    expect(await ours()).toEqual([]); // before: OUTPUT and every br-… bridge of this host
    expect(server!.logs()).toContain("not enforced on this host until the administrator designates it");

    await docker.createNetwork({ Name: network, Driver: "bridge" });
    const bridge = `br-${((await docker.getNetwork(network).inspect()) as { Id: string }).Id.slice(0, 12)}`;
    expect((await cli(["egress", "set-local", id, "--scope", `docker:${network}`])).code).toBe(0);
    await server!.stop();
    await start();
    const deadline = Date.now() + 15_000;
    while (
      !(await ours()).includes(`-A DOCKER-USER -i ${bridge} ! -o ${bridge} -j SLIPWAY_EGRESS_0`) &&
      Date.now() < deadline
    )
      await Bun.sleep(100);
    const rules = await ours();
    expect(rules).toContain(`-A DOCKER-USER -i ${bridge} ! -o ${bridge} -j SLIPWAY_EGRESS_0`);
    expect(
      rules.filter((l) => l.startsWith("-A OUTPUT") || l.includes("-i br-+ ! -o br-+ -j SLIPWAY_EGRESS_0")),
    ).toEqual([]);
    const status = await cli(["egress", "apply-status", "--org", "tenant"]);
    expect(status.stdout).toContain(`(local: docker:${network})`);
  }, 300_000);

  const bridgeOf = async (name: string) =>
    `br-${((await docker.getNetwork(name).inspect()) as { Id: string }).Id.slice(0, 12)}`;
  const json = async <T>(args: string[]): Promise<T> => {
    const r = await cli([...args, "--json"]);
    if (r.code !== 0) throw new Error(`slipway ${args.join(" ")}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  type EventView = { action: string; host_id: string; scope: string; source: string; dst: string; port: number };
  let inScope: { id: string; addr: string };
  let outside: { id: string; addr: string };

  test("containers on the designated network: would-be drops reported in monitor mode, refused in enforce mode, others untouched; policy changes reach serve's agent without a restart", async () => {
    listener = await makeListener(id, "L");
    const image = await ensureBusyboxImage(docker);
    await docker.createNetwork({ Name: otherNetwork, Driver: "bridge" });
    inScope = await runContainer(docker, image, network, `slwlocal-${id}-in`);
    containers.push(inScope.id);
    outside = await runContainer(docker, image, otherNetwork, `slwlocal-${id}-out`);
    containers.push(outside.id);
    const addr = listener.addr;

    // Monitor mode: the rule added now reaches the running serve; the connection passes and is reported.
    expect((await cli(["egress", "add", "--org", "tenant", "deny", addr])).code).toBe(0);
    const denySets = async () =>
      (await run(["ipset", "list"])).stdout
        .split(/\n(?=Name: )/)
        .filter((b) => /^Name: slw0_d\d+_4\n/.test(b))
        .join("\n");
    await waitFor("serve's agent to put the rule in its deny set", async () =>
      (await denySets()).includes(`\n${addr}`),
    );
    expect(await httpFrom(docker, inScope.id, addr)).toBe("L");
    expect(await httpFrom(docker, outside.id, addr)).toBe("L");
    let events: EventView[] = [];
    await waitFor("the would-be drop reported", async () =>
      (events = await json<EventView[]>(["egress", "events", "--org", "tenant"])).some((e) => e.dst === addr),
    );
    expect(events.filter((e) => e.dst === addr)).toEqual([
      expect.objectContaining({
        action: "would-block",
        host_id: hostId,
        scope: `docker:${network}`,
        source: inScope.addr,
        port: 80,
      }),
    ]);

    // Enforce mode: refused from the designated network only (the other one is known by then:
    // a network the agent has not looked up yet is held by the policy, see egress-docker).
    const otherBridge = await bridgeOf(otherNetwork);
    await waitFor("the other network known to serve's agent", async () =>
      (await ours()).includes(`-A SLIPWAY_NEWNET_0 -i ${otherBridge} -j RETURN`),
    );
    expect((await cli(["egress", "set-mode", "--org", "tenant", "enforce"])).code).toBe(0);
    await waitFor(
      "the connection refused in enforce mode",
      async () => (await httpFrom(docker, inScope.id, addr)) === null,
    );
    expect(await httpFrom(docker, outside.id, addr)).toBe("L");
    await waitFor("the refusal reported", async () =>
      (await json<EventView[]>(["egress", "events", "--org", "tenant"])).some(
        (e) => e.dst === addr && e.action === "blocked",
      ),
    );
    const reported = (await json<EventView[]>(["egress", "events", "--org", "tenant"])).filter((e) => e.dst === addr);
    expect(reported.map((e) => [e.action, e.scope, e.source]).sort()).toEqual([
      ["blocked", `docker:${network}`, inScope.addr],
      ["would-block", `docker:${network}`, inScope.addr],
    ]);
    const host = (
      await json<{ id: string; applied_ok: boolean | null; applied_error: string | null }[]>([
        "egress",
        "apply-status",
        "--org",
        "tenant",
      ])
    ).find((h) => h.id === hostId)!;
    expect(host).toMatchObject({ applied_ok: true, applied_error: null });

    // The rule removed: open again, with no restart.
    expect((await cli(["egress", "remove", "--org", "tenant", addr])).code).toBe(0);
    await waitFor(
      "the connection open once the rule is gone",
      async () => (await httpFrom(docker, inScope.id, addr)) === "L",
    );
  }, 300_000);

  test("ending the designation takes the scope away at once: no jump, the containers' connections pass", async () => {
    const addr = listener!.addr;
    expect((await cli(["egress", "add", "--org", "tenant", "deny", addr])).code).toBe(0);
    await waitFor("the connection refused again", async () => (await httpFrom(docker, inScope.id, addr)) === null);
    expect((await cli(["egress", "unset-local", hostId])).code).toBe(0);
    const bridge = await bridgeOf(network);
    await waitFor(
      "the network's jump removed",
      async () => !(await ours()).includes(`-A DOCKER-USER -i ${bridge} ! -o ${bridge} -j SLIPWAY_EGRESS_0`),
    );
    expect((await ours()).filter((l) => l.startsWith("-A DOCKER-USER") || l.startsWith("-A OUTPUT"))).toEqual([]);
    expect(await httpFrom(docker, inScope.id, addr)).toBe("L");
  }, 300_000);
});

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await Bun.sleep(200);
  }
}
