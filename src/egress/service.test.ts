/**
 * @module egress/service.test
 * Runner hosts enforced on the appliance host itself (egress.local_agent): only the
 * administrator's designation makes a host local, its scopes are the administrator's, and what
 * its in-process agent reports outside them is dropped. Real SQLite with every migration.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Actor } from "../auth/actor.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { egressServiceFactory } from "./service.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-egress-service-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const db = openDatabase(join(dir, "slipway.db"));
applyMigrations(db);
const audit = auditServiceFactory({ db });
const orgs = orgsServiceFactory({ db, audit });
const admin: Actor = {
  kind: "user",
  userId: "u_admin",
  username: "admin",
  isAdmin: true,
  tokenId: null,
  memberships: {},
};
orgs.createUser({ username: "mallory" }, "system:test");
const org = orgs.create({ slug: "evil", name: "Evil", owner: "mallory" }, admin).id;
const owner: Actor = {
  kind: "user",
  userId: "u_m",
  username: "mallory",
  isAdmin: false,
  tokenId: null,
  memberships: { [org]: "owner" },
};
const egress = egressServiceFactory({ db, audit, applianceHosts: [], extraAllow: [] });

test("a runner host named 'local' is not enforced on the appliance host: only the administrator's designation makes it local", () => {
  const host = egress.addHost(org, { name: "local", scopes: ["host", "docker:*"] }, owner).host;
  expect(egress.localHostIds()).toEqual([]);
  expect(egress.undesignatedNamedLocal().map((h) => h.id)).toEqual([host.id]);
  expect(host.local_scopes).toBeNull();

  const designated = egress.designateLocal(host.id, ["docker:ci-org-evil"], admin);
  expect(designated.local_scopes).toEqual(["docker:ci-org-evil"]);
  expect(egress.localHostIds()).toEqual([host.id]);
  // serve's own agent applies the administrator's scopes, never the organization's.
  expect(egress.agentPolicy(host.id, { local: true }).scopes).toEqual(["docker:ci-org-evil"]);
  expect(egress.agentPolicy(host.id).scopes).toEqual(["host", "docker:*"]);
  // The owner widening the host's scopes changes nothing on the appliance host.
  egress.setHostScopes(host.id, ["host"], owner);
  expect(egress.agentPolicy(host.id, { local: true }).scopes).toEqual(["docker:ci-org-evil"]);
  expect(() => egress.designateLocal(host.id, ["docker:bad name"], admin)).toThrow("not a Docker network name");

  // Events outside the designated scopes (another tenant's bridge, the host) are not kept.
  const at = new Date().toISOString();
  const ev = (scope: string, dst: string) => ({
    action: "would-block" as const,
    scope,
    source: "172.18.0.5",
    dst,
    port: 443,
    protocol: "tcp",
    count: 1,
    at,
  });
  expect(
    egress.reportEvents(
      host.id,
      [ev("docker:ci-org-evil", "203.0.113.1"), ev("docker:*", "203.0.113.2"), ev("host", "203.0.113.3")],
      { local: true },
    ),
  ).toBe(1);
  expect(egress.listEvents(org).map((e) => e.dst)).toEqual(["203.0.113.1"]);

  // Ending the designation takes the scopes away from the running local agent at once.
  egress.clearLocal(host.id, admin);
  expect(egress.localHostIds()).toEqual([]);
  expect(egress.agentPolicy(host.id, { local: true }).scopes).toEqual([]);
  expect(() => egress.clearLocal(host.id, admin)).toThrow("not designated");
  const actions = (
    db.query("SELECT action FROM audit_log WHERE action LIKE 'egress.host.%local'").all() as { action: string }[]
  ).map((r) => r.action);
  expect(actions).toEqual(["egress.host.local", "egress.host.unlocal"]);
});

test("the resolvers an agent reports are kept for apply-status, and only addresses", () => {
  const host = egress.addHost(org, { name: "ci-2", scopes: ["host"] }, owner).host;
  egress.reportStatus(host.id, { etag: "e", ok: true, dns_resolvers: ["10.0.0.53", "not-an-address", "fd00::53"] });
  expect(egress.getHost(host.id).dns_resolvers).toEqual(["10.0.0.53", "fd00::53"]);
  egress.reportStatus(host.id, { etag: "e2", ok: true }); // an older agent: what it said before stays
  expect(egress.getHost(host.id).dns_resolvers).toEqual(["10.0.0.53", "fd00::53"]);
});

test("a rule changes in place: canonical target and ports, the revision bumps, a duplicate is refused", () => {
  const rule = egress.addRule(org, { action: "allow", target: "Registry.Example.com", ports: "443" }, owner);
  const before = egress.getPolicy(org).revision;
  const changed = egress.updateRule(org, rule.id, { target: "*.Example.com", ports: "80, 443", comment: "web" }, owner);
  expect(changed).toMatchObject({
    id: rule.id,
    action: "allow",
    target: "*.example.com",
    ports: "80,443",
    comment: "web",
  });
  expect(egress.getPolicy(org).revision).toBe(before + 1);
  expect(egress.getPolicy(org).rules.find((r) => r.id === rule.id)).toEqual(changed);
  expect(egress.updateRule(org, rule.id, { ports: null }, owner).ports).toBeNull();
  expect(() => egress.updateRule(org, rule.id, { target: "*" }, owner)).toThrow("default rule");
  expect(() => egress.updateRule(org, "egr_missing", { comment: "x" }, owner)).toThrow("no egress rule");
  egress.addRule(org, { action: "deny", target: "10.0.0.0/8", ports: "22" }, owner);
  expect(() => egress.updateRule(org, rule.id, { action: "deny", target: "10.0.0.0/8", ports: "22" }, owner)).toThrow(
    "already exists",
  );
});

test("events group by destination and port, with counts and the allow rule that now lets each through", () => {
  const host = egress.addHost(org, { name: "ci-group", scopes: ["host"] }, owner).host;
  const at = "2026-01-01T00:00:00.000Z";
  const later = "2026-01-01T00:05:00.000Z";
  const ev = { scope: "host", protocol: "tcp", count: 1 };
  egress.reportEvents(host.id, [
    { ...ev, action: "would-block", source: "uid:1000", dst: "192.0.2.10", port: 443, hostname: "pkg.test", at },
    {
      ...ev,
      action: "would-block",
      source: "uid:1001",
      dst: "192.0.2.11",
      port: 443,
      hostname: "pkg.test",
      count: 4,
      at: later,
    },
    { ...ev, action: "blocked", source: "uid:1000", dst: "198.51.100.3", port: 22, hostname: null, count: 2, at },
  ]);
  // Only this test's destinations (an earlier test reported into the same organization).
  const ours = new Set(["pkg.test", "198.51.100.3"]);
  const groups = egress.eventDestinations(org).filter((g) => ours.has(g.destination));
  expect(groups.map((g) => [g.destination, g.port, g.would_block, g.blocked, g.allowed_by])).toEqual([
    ["pkg.test", 443, 5, 0, null],
    ["198.51.100.3", 22, 0, 2, null],
  ]);
  expect(groups[0]!.last_at).toBe(later);
  const allow = egress.addRule(org, { action: "allow", target: "pkg.test", ports: "443" }, owner);
  egress.addRule(org, { action: "allow", target: "198.51.100.0/24" }, owner);
  egress.addRule(org, { action: "deny", target: "198.51.100.3", ports: "22" }, owner);
  const after = egress.eventDestinations(org);
  expect(after.find((g) => g.destination === "pkg.test")!.allowed_by).toBe(allow.id);
  // A deny rule wins over every allow, as on the runner hosts.
  expect(after.find((g) => g.destination === "198.51.100.3")!.allowed_by).toBeNull();
});
