/**
 * @module test/e2e/egress-local
 * `serve` with egress.local_agent, the compiled binary on this host: an organization naming a
 * runner host `local` with scope `host` gets nothing on the appliance host's firewall; once the
 * administrator designates the host with a docker:NAME scope (a real network made by dockerd), the
 * appliance host enforces exactly that scope. The organization's policy is in monitor mode with
 * default allow, so nothing here could drop a packet even if it were applied too widely; its own
 * ruleset instance is removed at the end.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { uninstallEgress } from "../../src/egress/agent.ts";
import { hostExec } from "../../src/egress/apply.ts";
import { run, which } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
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
  const network = `slwlocal-${Math.random().toString(16).slice(2, 8)}`;
  const docker = new Docker();
  // The first local host's ruleset instance is "0": SLIPWAY_EGRESS_0.
  const env = { SLIPWAY_EGRESS_LOCAL_AGENT: "true", SLIPWAY_EGRESS_HOSTS_FILE: hostsFile, SLIPWAY_EGRESS_NFLOG_GROUP: String(20000 + Math.floor(Math.random() * 10000)) };
  let server: Served | null = null;
  const start = async () => (server = await serve(bin, join(work, "data"), [], env));
  const admin = () => readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
  const cli = async (args: string[]) => {
    const p = Bun.spawn([bin, ...args, "--server", server!.url, "--cacert", join(work, "data", "ca.pem"), "--token", admin()], { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "", HOME: work } });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { stdout, stderr, code };
  };
  const ours = async () => (await run(["iptables-save", "-t", "filter"])).stdout.split("\n").filter((l) => l.includes("SLIPWAY_EGRESS_0") || l.includes("SLIPWAY_NEWNET_0"));

  afterAll(async () => {
    await server?.stop();
    await uninstallEgress({ exec: hostExec(), hostsFile, stateFile: null, instance: "0" });
    await docker.getNetwork(network).remove().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  });

  test("a host the organization names 'local' is not enforced; the administrator's designation is, with the administrator's scope only", async () => {
    expect(await ours()).toEqual([]);
    await start();
    expect((await cli(["orgs", "create", "--slug", "tenant", "--name", "Tenant"])).code).toBe(0);
    expect((await cli(["egress", "set-mode", "--org", "tenant", "monitor"])).code).toBe(0);
    const added = await cli(["egress", "add-host", "--org", "tenant", "--name", "local", "--scope", "host", "--scope", "docker:*", "--json"]);
    expect(added.code).toBe(0);
    const { id } = JSON.parse(added.stdout) as { id: string };
    // Local hosts are picked up at start.
    await server!.stop();
    await start();
    await Bun.sleep(1500);
    expect(await ours()).toEqual([]); // before: OUTPUT and every br-… bridge of this host
    expect(server!.logs()).toContain("not enforced on this host until the administrator designates it");

    await docker.createNetwork({ Name: network, Driver: "bridge" });
    const bridge = `br-${((await docker.getNetwork(network).inspect()) as { Id: string }).Id.slice(0, 12)}`;
    expect((await cli(["egress", "set-local", id, "--scope", `docker:${network}`])).code).toBe(0);
    await server!.stop();
    await start();
    const deadline = Date.now() + 15_000;
    while (!(await ours()).includes(`-A DOCKER-USER -i ${bridge} ! -o ${bridge} -j SLIPWAY_EGRESS_0`) && Date.now() < deadline) await Bun.sleep(100);
    const rules = await ours();
    expect(rules).toContain(`-A DOCKER-USER -i ${bridge} ! -o ${bridge} -j SLIPWAY_EGRESS_0`);
    expect(rules.filter((l) => l.startsWith("-A OUTPUT") || l.includes("-i br-+ ! -o br-+ -j SLIPWAY_EGRESS_0"))).toEqual([]);
    const status = await cli(["egress", "apply-status", "--org", "tenant"]);
    expect(status.stdout).toContain(`(local: docker:${network})`);
  }, 120_000);
});
