/**
 * @module test/e2e/bad-input
 * Bad input on every endpoint that takes a body, found from the OpenAPI document itself (so a
 * new endpoint is covered without editing this file): malformed JSON, a body of the wrong type,
 * and an unknown field each get a 400 problem+json, and no table gains or loses a row.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makeWorld, type World } from "../support/world.ts";

let w: World;
let operations: { method: string; path: string }[] = [];

beforeAll(async () => {
  w = await makeWorld();
  const spec = (await (await w.handle(new Request("http://localhost/api/v1/openapi.json"))).json()) as {
    paths: Record<string, Record<string, { requestBody?: unknown }>>;
  };
  operations = Object.entries(spec.paths).flatMap(([path, ops]) =>
    Object.entries(ops)
      .filter(([, op]) => op.requestBody !== undefined)
      .map(([method]) => ({ method: method.toUpperCase(), path })),
  );
});
afterAll(() => w.close());

function concrete(path: string): string {
  const ids: Record<string, string> = { org: w.ids.A, id: w.ids.p1, user: "userA", code: "BCDF-GHJK" };
  return path.replace(/\{(\w+)\}|:(\w+)/g, (_, a, b) => ids[a ?? b] ?? "x");
}

function rowCounts(): Record<string, number> {
  const tables = (w.db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'audit_log'").all() as { name: string }[]).map((t) => t.name);
  return Object.fromEntries(tables.map((t) => [t, (w.db.query(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n]));
}

test("the sweep covers the identity API", () => {
  const names = operations.map((o) => `${o.method} ${o.path}`);
  for (const expected of ["POST /api/v1/orgs", "POST /api/v1/tokens", "POST /api/v1/projects/{id}/trust", "PATCH /api/v1/projects/{id}", "POST /api/v1/auth/login", "POST /api/v1/oidc/exchange", "PUT /api/v1/egress/local-hosts/{id}", "POST /api/v1/egress/agent/status", "PUT /api/v1/orgs/{org}/quotas"]) {
    expect(names).toContain(expected);
  }
});

test("every body-taking endpoint answers malformed, mistyped and unknown-field bodies with 400", async () => {
  const before = rowCounts();
  const failures: string[] = [];
  for (const op of operations) {
    for (const [label, body] of [
      ["malformed JSON", '{"name": '],
      ["wrong type", "[1, 2, 3]"],
      ["unknown field", JSON.stringify({ definitely_not_a_field: true })],
    ] as const) {
      const r = await w.handle(
        new Request(`http://localhost${concrete(op.path)}`, {
          method: op.method,
          headers: { authorization: `Bearer ${w.secrets.admin}`, "content-type": "application/json" },
          body,
        }),
      );
      const type = r.headers.get("content-type");
      if (r.status !== 400 || type !== "application/problem+json") failures.push(`${op.method} ${op.path} (${label}): ${r.status} ${type}`);
      else {
        const p = (await r.json()) as { detail?: string };
        if (!p.detail) failures.push(`${op.method} ${op.path} (${label}): no detail`);
      }
    }
  }
  expect(failures).toEqual([]);
  expect(rowCounts()).toEqual(before);
});

test("duplicates answer 409 and change nothing", async () => {
  const before = rowCounts();
  const cases: [string, string, unknown][] = [
    ["POST", "/api/v1/orgs", { slug: "org-a", name: "again", owner: "ownerA" }],
    ["POST", `/api/v1/orgs/${w.ids.A}/projects`, { name: "p1" }],
    ["PATCH", `/api/v1/projects/${w.ids.p2}`, { name: "p1" }],
    ["POST", `/api/v1/orgs/${w.ids.A}/members`, { user: "userA", role: "owner" }],
    ["POST", "/api/v1/users", { username: "ownerA" }],
  ];
  for (const [method, path, body] of cases) {
    const r = await w.call("admin", method, path, body);
    expect(`${method} ${path} ${r.status}`).toBe(`${method} ${path} 409`);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
  }
  expect(rowCounts()).toEqual(before);
});

test("quota values out of range, fractional or of the wrong type answer 400 and change nothing", async () => {
  const before = rowCounts();
  for (const body of [{ max_builder_cpus: 0 }, { max_builder_cpus: 257 }, { max_projects: -1 }, { max_running_builders: 1.5 }, { max_cache_size_gb: "ten" }, { max_builder_memory_mb: 255 }, { max_projects: true }]) {
    const r = await w.call("admin", "PUT", `/api/v1/orgs/${w.ids.A}/quotas`, body);
    expect(`${JSON.stringify(body)} ${r.status} ${r.headers.get("content-type")}`).toBe(`${JSON.stringify(body)} 400 application/problem+json`);
  }
  expect(rowCounts()).toEqual(before);
});
