/**
 * @module builders/network-policy.test
 * The builder network policy's rules, exactly; then applied for real with iptables, ip6tables and
 * ipset inside a network namespace this test creates: idempotent, both families or neither,
 * removed without a trace. (The end-to-end proof with a real builder is
 * test/e2e/builder-network-policy.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { hostExec, type HostExec } from "../host/exec.ts";
import { run, which } from "../host/run.ts";
import {
  bridgeName,
  builderNetworkPolicyFactory,
  policyNames,
  renderPolicyChains,
  renderPolicyNat,
  type ResolvedPolicy,
} from "./network-policy.ts";
import { parseEndpoint } from "../config/values.ts";
import { integrationSuite } from "../../test/support/integration.ts";

const names = policyNames("appl_01HXYZAABCDEFGH");
const policy: ResolvedPolicy = {
  registryPort: 8445,
  apiPort: 8443,
  resolvers: { 4: ["10.255.255.53/32"], 6: [] },
  mirrors: { 4: [{ addr: "10.1.2.3", port: 3142 }], 6: [] },
  allow: { 4: ["10.20.0.0/16"], 6: [] },
};

test("names: one prefix per appliance, bridge names within the kernel's 15 characters", () => {
  expect(names).toEqual({
    bridgePrefix: "sbabcdefgh",
    input: "SLWB_ABCDEFGH_IN",
    forward: "SLWB_ABCDEFGH_FWD",
    nat: "SLWB_ABCDEFGH_NAT",
    setPrefix: "slwbabcdefgh",
  });
  const b = bridgeName(names, "slipway-abcdefgh-proj_01abc");
  expect(b.startsWith(names.bridgePrefix)).toBe(true);
  expect(b.length).toBeLessThanOrEqual(15);
  expect(bridgeName(names, "slipway-abcdefgh-proj_01abc")).toBe(b);
  expect(bridgeName(names, "slipway-abcdefgh-proj_01abd")).not.toBe(b);
});

test("mirror entries: host:port only", () => {
  expect(parseEndpoint("apt.internal:3142")).toEqual({ host: "apt.internal", port: 3142 });
  expect(parseEndpoint("[fd00::1]:80")).toEqual({ host: "fd00::1", port: 80 });
  for (const bad of ["apt.internal", "apt.internal:0", "apt.internal:70000", "a b:80", "[nothost]:80", "*.x.org:80"])
    expect(parseEndpoint(bad)).toBeNull();
});

test("IPv4 chains: exceptions first, then the host refused whole and reserved ranges refused", () => {
  expect(renderPolicyChains(policy, names, 4)).toEqual([
    ":SLWB_ABCDEFGH_IN - [0:0]",
    ":SLWB_ABCDEFGH_FWD - [0:0]",
    "-A SLWB_ABCDEFGH_IN -p udp -m set --match-set slwbabcdefgh_dns_4 dst -m udp --dport 53 -j RETURN",
    "-A SLWB_ABCDEFGH_IN -p tcp -m set --match-set slwbabcdefgh_dns_4 dst -m tcp --dport 53 -j RETURN",
    "-A SLWB_ABCDEFGH_IN -d 10.1.2.3/32 -p tcp -m tcp --dport 3142 -j RETURN",
    "-A SLWB_ABCDEFGH_FWD -p udp -m set --match-set slwbabcdefgh_dns_4 dst -m udp --dport 53 -j RETURN",
    "-A SLWB_ABCDEFGH_FWD -p tcp -m set --match-set slwbabcdefgh_dns_4 dst -m tcp --dport 53 -j RETURN",
    "-A SLWB_ABCDEFGH_FWD -d 10.1.2.3/32 -p tcp -m tcp --dport 3142 -j RETURN",
    "-A SLWB_ABCDEFGH_IN -p tcp -m tcp --dport 8445 -j RETURN",
    "-A SLWB_ABCDEFGH_IN -p tcp -j REJECT --reject-with tcp-reset",
    "-A SLWB_ABCDEFGH_IN -j REJECT --reject-with icmp-port-unreachable",
    "-A SLWB_ABCDEFGH_FWD -m set --match-set slwbabcdefgh_allow_4 dst -j RETURN",
    "-A SLWB_ABCDEFGH_FWD -m set --match-set slwbabcdefgh_deny_4 dst -p tcp -j REJECT --reject-with tcp-reset",
    "-A SLWB_ABCDEFGH_FWD -m set --match-set slwbabcdefgh_deny_4 dst -j REJECT --reject-with icmp-port-unreachable",
  ]);
});

test("nat: the API port on this host leads builders to the registry-only listener", () => {
  expect(renderPolicyNat(policy, names)).toEqual([
    ":SLWB_ABCDEFGH_NAT - [0:0]",
    "-A SLWB_ABCDEFGH_NAT -p tcp -m tcp --dport 8443 -m addrtype --dst-type LOCAL -j REDIRECT --to-ports 8445",
  ]);
  expect(renderPolicyNat({ ...policy, registryPort: null }, names)).toEqual([":SLWB_ABCDEFGH_NAT - [0:0]"]);
});

const missing =
  process.getuid?.() !== 0
    ? "needs root"
    : (["iptables-restore", "ip6tables-restore", "ipset", "ip"].find((p) => !which(p)) ?? null);

integrationSuite("applied for real in a network namespace", missing, () => {
  const ns = `slwbp${Math.random().toString(16).slice(2, 8)}`;
  const exec = hostExec(ns);
  // Names of this test's own, like a second appliance on the host.
  const testNames = policyNames(`t${ns.slice(-7)}`);
  const settings = { mode: "enforce" as const, allow: ["10.20.0.0/16"], mirrors: [{ host: "10.1.2.3", port: 3142 }] };
  const resolvers = () => ({ 4: ["10.255.255.53/32"], 6: [] });
  const snapshot = async () => {
    const clean = (t: string) =>
      t
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .map((l) => l.replace(/\[\d+:\d+\]/, ""))
        .join("\n");
    const sets = (await exec(["ipset", "list", "-n"])).stdout
      .split("\n")
      .filter((s) => s.startsWith(testNames.setPrefix))
      .sort();
    const save = async (argv: string[]) =>
      clean((await exec([...argv, "-t", "filter"])).stdout) + clean((await exec([...argv, "-t", "nat"])).stdout);
    return { v4: await save(["iptables-save"]), v6: await save(["ip6tables-save"]), sets };
  };

  beforeAll(async () => {
    expect((await run(["ip", "netns", "add", ns])).code).toBe(0);
    // Create the filter tables so "nothing left" compares like with like.
    await exec(["iptables", "-t", "filter", "-L", "-n"]);
    await exec(["ip6tables", "-t", "filter", "-L", "-n"]);
    await exec(["iptables", "-t", "nat", "-L", "-n"]);
    await exec(["ip6tables", "-t", "nat", "-L", "-n"]);
  });
  afterAll(async () => {
    await builderNetworkPolicyFactory({
      exec,
      names: testNames,
      settings,
      registryPort: 8445,
      apiPort: 8443,
      resolvers,
    }).remove();
    await run(["ip", "netns", "delete", ns]);
  });

  test("apply twice gives the same rules; remove leaves the tables as they were", async () => {
    const before = await snapshot();
    const p = builderNetworkPolicyFactory({
      exec,
      names: testNames,
      settings,
      registryPort: 8445,
      apiPort: 8443,
      resolvers,
    });
    expect(p.refusal()).toContain("has not been applied");
    await p.apply();
    expect(p.refusal()).toBeNull();
    expect(await p.inForce()).toBe(true);
    const once = await snapshot();
    expect(once.v4).toContain(`-A INPUT -i ${testNames.bridgePrefix}+ -j ${testNames.input}`);
    expect(once.v6).toContain(`-A FORWARD -i ${testNames.bridgePrefix}+ -j ${testNames.forward}`);
    expect(once.v4).toContain(`-A PREROUTING -i ${testNames.bridgePrefix}+ -j ${testNames.nat}`);
    expect(once.v6).toContain(`--dport 8443 -m addrtype --dst-type LOCAL -j REDIRECT --to-ports 8445`);
    expect(once.sets.length).toBe(6);
    await p.apply();
    expect(await snapshot()).toEqual(once);
    // A firewall reload drops the jumps: check() puts them back.
    await exec(["iptables", "-D", "INPUT", "-i", `${testNames.bridgePrefix}+`, "-j", testNames.input]);
    expect(await p.inForce()).toBe(false);
    expect(await p.check()).toBe(true);
    expect(await snapshot()).toEqual(once);
    await p.remove();
    expect(await snapshot()).toEqual(before);
  });

  test("where Docker has DOCKER-USER the forward jump goes there (Docker puts each network's ACCEPTs above anything in FORWARD)", async () => {
    await exec(["iptables-restore", "--noflush"], {
      stdin: "*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n-I FORWARD 1 -j DOCKER-USER\nCOMMIT\n",
    });
    const p = builderNetworkPolicyFactory({
      exec,
      names: testNames,
      settings,
      registryPort: 8445,
      apiPort: 8443,
      resolvers,
    });
    await p.apply();
    const { v4, v6 } = await snapshot();
    expect(v4).toContain(`-A DOCKER-USER -i ${testNames.bridgePrefix}+ -j ${testNames.forward}`);
    expect(v4).not.toContain(`-A FORWARD -i ${testNames.bridgePrefix}+`);
    expect(v6).toContain(`-A FORWARD -i ${testNames.bridgePrefix}+ -j ${testNames.forward}`);
    expect(await p.inForce()).toBe(true);
    await p.remove();
    expect((await snapshot()).v4).not.toContain(testNames.bridgePrefix);
    await exec(["iptables-restore", "--noflush"], {
      stdin: "*filter\n-D FORWARD -j DOCKER-USER\n-F DOCKER-USER\n-X DOCKER-USER\nCOMMIT\n",
    });
  });

  test("when ip6tables fails, IPv4 is taken out again and builders are refused (both or neither)", async () => {
    const before = await snapshot();
    const failing6: HostExec = (argv, opts) =>
      argv[0] === "ip6tables-restore"
        ? Promise.resolve({ code: 1, stdout: "", stderr: "ip6tables-restore: simulated failure", timedOut: false })
        : exec(argv, opts);
    const p = builderNetworkPolicyFactory({
      exec: failing6,
      names: testNames,
      settings,
      registryPort: 8445,
      apiPort: 8443,
      resolvers,
    });
    await expect(p.apply()).rejects.toThrow("simulated failure");
    expect(p.refusal()).toContain("builders cannot start unfiltered");
    const after = await snapshot();
    expect(after.v4).toBe(before.v4);
    expect(after.v6).toBe(before.v6);
    await p.remove();
  });
});
