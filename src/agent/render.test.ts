/**
 * @module agent/render.test
 * The exact rule order the product promises, per mode, and the jump rules' saved form.
 */
import { expect, test } from "bun:test";
import { renderIpsetRestore } from "../host/ipset.ts";
import { jumpRule, namesFor, renderChain, renderSets, type Compiled } from "./render.ts";
import { withBlock } from "./hosts-file.ts";

const base: Compiled = {
  mode: "enforce",
  defaultAction: "deny",
  groups: [
    { ports: null, allow: { 4: ["10.0.0.0/8"], 6: [] }, deny: { 4: ["10.1.2.3/32"], 6: ["fd00::1/128"] } },
    {
      ports: [
        [443, 443],
        [8000, 8100],
      ],
      allow: { 4: ["192.0.2.1/32"], 6: [] },
      deny: { 4: [], 6: [] },
    },
  ],
  always: { 4: ["198.51.100.1/32"], 6: [] },
  dns: { 4: ["192.0.2.53/32"], 6: [] },
  knownBridges: null,
  jumps: [
    { kind: "host" },
    { kind: "uid", uid: 1001 },
    { kind: "iface", iface: "br-+" },
    { kind: "subnet", cidr: "fd30::/64", family: 6 },
  ],
  nflogGroup: 7,
};
const n = namesFor();

test("enforce: loopback, always, DNS to the resolvers only, deny, conntrack, allow, default — in that order", () => {
  const rules = renderChain(base, n, 4)
    .split("\n")
    .filter((l) => l.startsWith("-A"));
  expect(rules).toEqual([
    "-A SLIPWAY_EGRESS -o lo -j RETURN",
    "-A SLIPWAY_EGRESS -m set --match-set slw_always_4 dst -j RETURN",
    "-A SLIPWAY_EGRESS -p udp -m set --match-set slw_dns_4 dst -m udp --dport 53 -j RETURN",
    "-A SLIPWAY_EGRESS -p tcp -m set --match-set slw_dns_4 dst -m tcp --dport 53 -j RETURN",
    '-A SLIPWAY_EGRESS -m set --match-set slw_d0_4 dst -m conntrack --ctstate NEW -j NFLOG --nflog-group 7 --nflog-prefix "slw-drop" --nflog-threshold 1',
    "-A SLIPWAY_EGRESS -m set --match-set slw_d0_4 dst -p tcp -j REJECT --reject-with tcp-reset",
    "-A SLIPWAY_EGRESS -m set --match-set slw_d0_4 dst -j REJECT --reject-with icmp-port-unreachable",
    "-A SLIPWAY_EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
    "-A SLIPWAY_EGRESS -m set --match-set slw_a0_4 dst -j RETURN",
    "-A SLIPWAY_EGRESS -m set --match-set slw_a1_4 dst -p tcp -m multiport --dports 443,8000:8100 -j RETURN",
    "-A SLIPWAY_EGRESS -m set --match-set slw_a1_4 dst -p udp -m multiport --dports 443,8000:8100 -j RETURN",
    '-A SLIPWAY_EGRESS -m conntrack --ctstate NEW -j NFLOG --nflog-group 7 --nflog-prefix "slw-drop" --nflog-threshold 1',
    "-A SLIPWAY_EGRESS -p tcp -j REJECT --reject-with tcp-reset",
    "-A SLIPWAY_EGRESS -j REJECT --reject-with icmp-port-unreachable",
  ]);
});

test("monitor: the same evaluation, but every would-be drop is logged and let through", () => {
  const text = renderChain({ ...base, mode: "monitor" }, n, 6);
  expect(text).not.toContain("REJECT");
  expect(text).toContain(
    '-A SLIPWAY_EGRESS -m set --match-set slw_d0_6 dst -m conntrack --ctstate NEW -j NFLOG --nflog-group 7 --nflog-prefix "slw-monitor" --nflog-threshold 1\n-A SLIPWAY_EGRESS -m set --match-set slw_d0_6 dst -j RETURN',
  );
  expect(text).toContain("neighbour-solicitation");
});

test("sets are swapped in whole; a /0 is split for hash:net", () => {
  const sets = renderSets(
    { ...base, groups: [{ ports: null, allow: { 4: ["0.0.0.0/0"], 6: [] }, deny: { 4: [], 6: [] } }] },
    n,
  );
  const text = renderIpsetRestore(sets);
  expect(text).toContain("create slw_a0_4_t hash:net family inet");
  expect(text).toContain(
    "add slw_a0_4_t 0.0.0.0/1 -exist\nadd slw_a0_4_t 128.0.0.0/1 -exist\nswap slw_a0_4_t slw_a0_4\ndestroy slw_a0_4_t",
  );
});

test("jumps, per scope and family", () => {
  expect(jumpRule({ kind: "uid", uid: 1001 }, n, 4)).toEqual({
    chain: "OUTPUT",
    spec: "-m owner --uid-owner 1001 -j SLIPWAY_EGRESS",
  });
  expect(jumpRule({ kind: "iface", iface: "br-+" }, n, 6)).toEqual({
    chain: "DOCKER-USER",
    spec: "-i br-+ ! -o br-+ -j SLIPWAY_EGRESS",
  });
  expect(jumpRule({ kind: "subnet", cidr: "fd30::/64", family: 6 }, n, 4)).toBeNull();
  expect(namesFor("ab12")).toEqual({
    chain: "SLIPWAY_EGRESS_AB12",
    newNetworks: "SLIPWAY_NEWNET_AB12",
    setPrefix: "slwab12",
  });
  expect(jumpRule({ kind: "new-networks" }, n, 4)).toEqual({
    chain: "DOCKER-USER",
    spec: "-i br-+ ! -o br-+ -j SLIPWAY_NEWNET",
  });
});

test("docker:NAME scopes: bridges not known when compiled (a network created since) go through the policy", () => {
  const text = renderChain({ ...base, knownBridges: ["br-aaaa", "br-bbbb"] }, n, 4);
  expect(text.split("\n").slice(0, 3)).toEqual(["*filter", ":SLIPWAY_EGRESS - [0:0]", ":SLIPWAY_NEWNET - [0:0]"]);
  expect(text.split("\n").filter((l) => l.startsWith("-A SLIPWAY_NEWNET"))).toEqual([
    "-A SLIPWAY_NEWNET -i br-aaaa -j RETURN",
    "-A SLIPWAY_NEWNET -i br-bbbb -j RETURN",
    "-A SLIPWAY_NEWNET -j SLIPWAY_EGRESS",
  ]);
  expect(renderChain(base, n, 4)).not.toContain("NEWNET");
});

test("the hosts block: only between the markers, and removing it restores the file", () => {
  const original = "127.0.0.1 localhost\n# mine\n";
  const pinned = withBlock(original, new Map([["rr.test", ["10.0.0.1", "fd00::1"]]]));
  expect(pinned).toBe(
    `${original}# BEGIN slipway egress (managed by slipway; do not edit)\n10.0.0.1 rr.test\nfd00::1 rr.test\n# END slipway egress\n`,
  );
  expect(withBlock(pinned, new Map())).toBe(original);
  expect(withBlock(withBlock(pinned, new Map([["a.test", ["10.0.0.2"]]])), new Map())).toBe(original);
});
