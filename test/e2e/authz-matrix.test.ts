/**
 * @module test/e2e/authz-matrix
 * Every identity route, driven by every kind of actor, against one table of expected HTTP
 * statuses. Zero unexpected allows; another tenant's resources answer 404, never 403.
 * Mutating rows get a fresh world per cell so one actor's success cannot change another's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ACTOR_NAMES, makeWorld, type World } from "../support/world.ts";

type Ids = World["ids"];
interface Row {
  name: string;
  method: string;
  path: (ids: Ids) => string;
  body?: (ids: Ids) => unknown;
  // anon admin ownerA userA ownerB userB tokA1 tokA2 orgTokB oidcA1 expired revoked
  expect: number[];
}

const X = 401; // every row: expired and revoked credentials are plain 401
// prettier-ignore
const ROWS: Row[] = [
  { name: "who am I",               method: "GET",    path: () => "/api/v1/me",                                    expect: [401, 200, 200, 200, 200, 200, 403, 403, 403, 403, X, X] },
  { name: "list organizations",     method: "GET",    path: () => "/api/v1/orgs",                                  expect: [401, 200, 200, 200, 200, 200, 200, 200, 200, 200, X, X] },
  { name: "create organization",    method: "POST",   path: () => "/api/v1/orgs", body: () => ({ slug: "new-org", name: "N", owner: "ownerA" }), expect: [401, 201, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "read org A",             method: "GET",    path: (i) => `/api/v1/orgs/${i.A}`,                          expect: [401, 200, 200, 200, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "read org A by slug",     method: "GET",    path: () => "/api/v1/orgs/org-a",                            expect: [401, 200, 200, 200, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "rename org A",           method: "PATCH",  path: (i) => `/api/v1/orgs/${i.A}`, body: () => ({ name: "A2" }), expect: [401, 200, 200, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "builder runtime of A",   method: "GET",    path: (i) => `/api/v1/orgs/${i.A}/builder-runtime`,          expect: [401, 200, 200, 200, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "set builder runtime of A", method: "PUT",  path: (i) => `/api/v1/orgs/${i.A}/builder-runtime`, body: () => ({ oci_runtime: "runsc" }), expect: [401, 200, 403, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "quotas of A",            method: "GET",    path: (i) => `/api/v1/orgs/${i.A}/quotas`,                   expect: [401, 200, 200, 200, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "set quotas of A",        method: "PUT",    path: (i) => `/api/v1/orgs/${i.A}/quotas`, body: () => ({ max_projects: 5 }), expect: [401, 200, 403, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "set quotas of B",        method: "PUT",    path: (i) => `/api/v1/orgs/${i.B}/quotas`, body: () => ({ max_running_builders: null }), expect: [401, 200, 404, 404, 403, 403, 404, 404, 403, 404, X, X] },
  { name: "members of A",           method: "GET",    path: (i) => `/api/v1/orgs/${i.A}/members`,                  expect: [401, 200, 200, 200, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "add member to A",        method: "POST",   path: (i) => `/api/v1/orgs/${i.A}/members`, body: () => ({ user: "userB", role: "user" }), expect: [401, 201, 201, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "promote userA",          method: "PATCH",  path: (i) => `/api/v1/orgs/${i.A}/members/userA`, body: () => ({ role: "owner" }), expect: [401, 200, 200, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "remove userA",           method: "DELETE", path: (i) => `/api/v1/orgs/${i.A}/members/userA`,           expect: [401, 204, 204, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "projects of A",          method: "GET",    path: (i) => `/api/v1/orgs/${i.A}/projects`,                 expect: [401, 200, 200, 200, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "create project in A",    method: "POST",   path: (i) => `/api/v1/orgs/${i.A}/projects`, body: () => ({ name: "p9" }), expect: [401, 201, 201, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "create project in B",    method: "POST",   path: (i) => `/api/v1/orgs/${i.B}/projects`, body: () => ({ name: "q9" }), expect: [401, 201, 404, 404, 201, 403, 404, 404, 201, 404, X, X] },
  { name: "list visible projects",  method: "GET",    path: () => "/api/v1/projects",                              expect: [401, 200, 200, 200, 200, 200, 200, 200, 200, 200, X, X] },
  { name: "read project p1",        method: "GET",    path: (i) => `/api/v1/projects/${i.p1}`,                     expect: [401, 200, 200, 200, 404, 404, 200, 404, 404, 200, X, X] },
  { name: "update project p1",      method: "PATCH",  path: (i) => `/api/v1/projects/${i.p1}`, body: () => ({ builder_cpus: 4 }), expect: [401, 200, 200, 403, 404, 404, 403, 404, 404, 403, X, X] },
  { name: "delete project p1",      method: "DELETE", path: (i) => `/api/v1/projects/${i.p1}`,                     expect: [401, 204, 204, 403, 404, 404, 403, 404, 404, 403, X, X] },
  { name: "registry usage of p1",   method: "GET",    path: (i) => `/api/v1/projects/${i.p1}/registry`,            expect: [401, 200, 200, 200, 404, 404, 200, 404, 404, 200, X, X] },
  { name: "set registry retention of p1", method: "PUT", path: (i) => `/api/v1/projects/${i.p1}/registry`, body: () => ({ retention_days: 3 }), expect: [401, 200, 200, 403, 404, 404, 403, 404, 404, 403, X, X] },
  { name: "registry GC (no registry here: 503)", method: "POST", path: () => "/api/v1/registry/gc",                  expect: [401, 503, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "read project q1 (B)",    method: "GET",    path: (i) => `/api/v1/projects/${i.q1}`,                     expect: [401, 200, 404, 404, 200, 200, 404, 404, 200, 404, X, X] },
  { name: "delete project q1 (B)",  method: "DELETE", path: (i) => `/api/v1/projects/${i.q1}`,                     expect: [401, 204, 404, 404, 204, 403, 404, 404, 204, 404, X, X] },
  { name: "audit log of A",         method: "GET",    path: (i) => `/api/v1/orgs/${i.A}/audit`,                    expect: [401, 200, 200, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "appliance audit log",    method: "GET",    path: () => "/api/v1/audit",                                 expect: [401, 200, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "create user",            method: "POST",   path: () => "/api/v1/users", body: () => ({ username: "carol" }), expect: [401, 201, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "list own tokens",        method: "GET",    path: () => "/api/v1/tokens",                                expect: [401, 200, 200, 200, 200, 200, 403, 403, 403, 403, X, X] },
  { name: "create user token",      method: "POST",   path: () => "/api/v1/tokens", body: () => ({ kind: "user", name: "n" }), expect: [401, 201, 201, 201, 201, 201, 403, 403, 403, 403, X, X] },
  { name: "create org token for A", method: "POST",   path: () => "/api/v1/tokens", body: (i) => ({ kind: "org", name: "n", org: i.A }), expect: [401, 201, 201, 403, 404, 404, 404, 404, 404, 404, X, X] },
  { name: "create org token for B", method: "POST",   path: () => "/api/v1/tokens", body: (i) => ({ kind: "org", name: "n", org: i.B }), expect: [401, 201, 404, 404, 201, 403, 404, 404, 403, 404, X, X] },
  { name: "create token for p1",    method: "POST",   path: () => "/api/v1/tokens", body: (i) => ({ kind: "project", name: "n", project: i.p1 }), expect: [401, 201, 201, 403, 404, 404, 403, 404, 404, 403, X, X] },
  { name: "create token for q1",    method: "POST",   path: () => "/api/v1/tokens", body: (i) => ({ kind: "project", name: "n", project: i.q1 }), expect: [401, 201, 404, 404, 201, 403, 404, 404, 201, 404, X, X] },
  { name: "tokens of org B",        method: "GET",    path: (i) => `/api/v1/orgs/${i.B}/tokens`,                   expect: [401, 200, 404, 404, 200, 403, 404, 404, 403, 404, X, X] },
  { name: "revoke project token p2", method: "DELETE", path: (i) => `/api/v1/tokens/${i.tokA2}`,                   expect: [401, 200, 200, 403, 404, 404, 404, 403, 404, 404, X, X] },
  { name: "revoke ownerA's token",  method: "DELETE", path: (i) => `/api/v1/tokens/${i.ownerAToken}`,              expect: [401, 200, 200, 404, 404, 404, 404, 404, 404, 404, X, X] },
  // Which runner hosts serve enforces on the appliance host itself: the administrator's decision alone.
  { name: "local runner hosts",     method: "GET",    path: () => "/api/v1/egress/local-hosts",                    expect: [401, 200, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "designate hostA local",  method: "PUT",    path: (i) => `/api/v1/egress/local-hosts/${i.hostA}`, body: () => ({ scopes: ["docker:ci"] }), expect: [401, 200, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "designate a missing host local", method: "PUT", path: () => "/api/v1/egress/local-hosts/rnh_missing", body: () => ({ scopes: ["host"] }), expect: [401, 404, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
  { name: "end hostA's designation (none: 404)", method: "DELETE", path: (i) => `/api/v1/egress/local-hosts/${i.hostA}`, expect: [401, 404, 403, 403, 403, 403, 403, 403, 403, 403, X, X] },
];

let shared: World;
beforeAll(async () => (shared = await makeWorld()));
afterAll(() => shared.close());

describe("authorization matrix over every route", () => {
  for (const row of ROWS) {
    test(`${row.method} ${row.name}`, async () => {
      expect(row.expect).toHaveLength(ACTOR_NAMES.length);
      const got: Record<string, number> = {};
      for (const actor of ACTOR_NAMES) {
        // Reads share one world; each write gets its own, so outcomes do not depend on order.
        const world = row.method === "GET" ? shared : await makeWorld();
        try {
          const r = await world.call(actor, row.method, row.path(world.ids), row.body?.(world.ids));
          got[actor] = r.status;
          if (r.status >= 400) expect(r.headers.get("content-type")).toBe("application/problem+json");
        } finally {
          if (world !== shared) world.close();
        }
      }
      expect(got).toEqual(Object.fromEntries(ACTOR_NAMES.map((a, i) => [a, row.expect[i]!])));
    });
  }

  test("a nonexistent id and another tenant's id answer the same", async () => {
    const theirs = await shared.call("ownerB", "GET", `/api/v1/projects/${shared.ids.p1}`);
    const none = await shared.call("ownerB", "GET", "/api/v1/projects/prj_doesnotexist");
    expect(theirs.status).toBe(404);
    expect(none.status).toBe(404);
    const [a, b] = [(await theirs.json()) as { detail: string }, (await none.json()) as { detail: string }];
    expect(a.detail).toBe(b.detail);
  });

  test("anonymous callers cannot tell existing ids from missing ones", async () => {
    for (const path of [`/api/v1/orgs/${shared.ids.A}`, "/api/v1/orgs/no-such-org", `/api/v1/projects/${shared.ids.p1}`, "/api/v1/projects/prj_x", `/api/v1/tokens/${shared.ids.tokA2}`, "/api/v1/tokens/tok_x"]) {
      const method = path.includes("/tokens/") ? "DELETE" : "GET";
      expect((await shared.call("anon", method, path)).status).toBe(401);
    }
  });

  test("lists show only what the caller may see", async () => {
    const names = async (actor: "tokA1" | "orgTokB" | "userA", path: string) => ((await (await shared.call(actor, "GET", path)).json()) as { name: string }[]).map((p) => p.name).sort();
    expect(await names("tokA1", "/api/v1/projects")).toEqual(["p1"]);
    expect(await names("orgTokB", "/api/v1/projects")).toEqual(["q1"]);
    expect(await names("userA", "/api/v1/projects")).toEqual(["p1", "p2"]);
    expect(await names("userA", "/api/v1/orgs")).toEqual(["A"]);
  });

  test("failed authentications are audited with the caller's address and no credential", async () => {
    await shared.call("revoked", "GET", "/api/v1/me");
    const entry = shared.audit.list({ limit: 1 })[0]!;
    expect(entry).toMatchObject({ action: "auth.failure", outcome: "failure", ip: "192.0.2.1", actor: "anonymous" });
    expect(JSON.stringify(entry)).not.toContain(shared.secrets.revoked!);
  });

  test("the audit log cannot be rewritten", () => {
    expect(() => shared.db.run("UPDATE audit_log SET action = 'x'")).toThrow("append-only");
    expect(() => shared.db.run("DELETE FROM audit_log")).toThrow("append-only");
  });
});
