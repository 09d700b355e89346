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
