/**
 * @module test/e2e/audit-filters
 * The audit log's query filters (who, what, when) on GET /orgs/{org}/audit and GET /audit:
 * each narrows the list to matching entries, bad values are refused with the field named, and
 * entries name the users who acted and were acted on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { AuditEntryView } from "../../src/orgs/models.ts";
import { makeWorld, type World } from "../support/world.ts";

let w: World;
beforeAll(async () => {
  w = await makeWorld();
  // ownerA's changes to A: a member added, promoted, removed, and the organization renamed.
  expect(
    (await w.call("ownerA", "POST", `/api/v1/orgs/${w.ids.A}/members`, { user: "userB", role: "user" })).status,
  ).toBe(201);
  expect((await w.call("ownerA", "PATCH", `/api/v1/orgs/${w.ids.A}/members/userB`, { role: "owner" })).status).toBe(
    200,
  );
  expect((await w.call("ownerA", "DELETE", `/api/v1/orgs/${w.ids.A}/members/userB`)).status).toBe(204);
  expect((await w.call("ownerA", "PATCH", `/api/v1/orgs/${w.ids.A}`, { name: "Renamed A" })).status).toBe(200);
});
afterAll(() => w.close());

async function list(path: string, actor: "ownerA" | "admin" = "ownerA"): Promise<AuditEntryView[]> {
  const r = await w.call(actor, "GET", path);
  expect(r.status).toBe(200);
  return (await r.json()) as AuditEntryView[];
}

describe("audit log filters", () => {
  test("entries name who acted and on whom", async () => {
    const entries = await list(`/api/v1/orgs/${w.ids.A}/audit`);
    const add = entries.find((e) => e.action === "member.add" && e.target === w.ids.userB)!;
    expect(add.actor_name).toBe("ownerA");
    expect(add.target_name).toBe("userB");
    expect(add.actor).toMatch(/^user:usr_/);
    const rename = entries.find((e) => e.action === "org.update")!;
    expect(rename.target).toBe(w.ids.A);
    expect(rename.target_name).toBe("org-a");
  });

  test("by actor: a username or the actor label, the same entries", async () => {
    const all = await list(`/api/v1/orgs/${w.ids.A}/audit`);
    const byName = await list(`/api/v1/orgs/${w.ids.A}/audit?actor=ownerA`);
    expect(byName.length).toBeGreaterThanOrEqual(4);
    expect(byName.every((e) => e.actor_name === "ownerA")).toBe(true);
    expect(byName.length).toBe(all.filter((e) => e.actor_name === "ownerA").length);
    const byLabel = await list(`/api/v1/orgs/${w.ids.A}/audit?actor=${encodeURIComponent(byName[0]!.actor)}`);
    expect(byLabel.map((e) => e.id)).toEqual(byName.map((e) => e.id));
    expect(await list(`/api/v1/orgs/${w.ids.A}/audit?actor=nobody-at-all`)).toEqual([]);
  });

  test("by action: exact, or a family with or without the dot", async () => {
    const exact = await list(`/api/v1/orgs/${w.ids.A}/audit?action=member.role`);
    expect(exact.map((e) => e.action)).toEqual(["member.role"]);
    expect(exact[0]!.details).toEqual({ from: "user", to: "owner" });
    for (const family of ["member", "member."]) {
      const entries = await list(`/api/v1/orgs/${w.ids.A}/audit?action=${family}`);
      // Newest first; the seeded tenants' members were added before.
      expect(entries.slice(0, 3).map((e) => e.action)).toEqual(["member.remove", "member.role", "member.add"]);
      expect(entries.every((e) => e.action.startsWith("member."))).toBe(true);
    }
    // A family is whole words: "mem" is not "member".
    expect(await list(`/api/v1/orgs/${w.ids.A}/audit?action=mem`)).toEqual([]);
  });

  test("by time: since and until, inclusive, in any RFC 3339 offset", async () => {
    const all = await list(`/api/v1/orgs/${w.ids.A}/audit`);
    const role = all.find((e) => e.action === "member.role")!;
    const since = await list(`/api/v1/orgs/${w.ids.A}/audit?since=${encodeURIComponent(role.at)}`);
    expect(since.every((e) => e.at >= role.at)).toBe(true);
    expect(since.map((e) => e.id)).toContain(role.id);
    const until = await list(`/api/v1/orgs/${w.ids.A}/audit?until=${encodeURIComponent(role.at)}`);
    expect(until.every((e) => e.at <= role.at)).toBe(true);
    expect(until.map((e) => e.id)).toContain(role.id);
    // The same instant written with an offset.
    const d = new Date(role.at);
    const plus2 = new Date(d.getTime() + 2 * 3600_000).toISOString().replace("Z", "+02:00");
    const same = await list(`/api/v1/orgs/${w.ids.A}/audit?since=${encodeURIComponent(plus2)}`);
    expect(same.map((e) => e.id)).toEqual(since.map((e) => e.id));
    const future = new Date(Date.now() + 86400_000).toISOString();
    expect(await list(`/api/v1/orgs/${w.ids.A}/audit?since=${future}`)).toEqual([]);
  });

  test("filters combine with pages (before, limit)", async () => {
    const first = await list(`/api/v1/orgs/${w.ids.A}/audit?action=member&limit=2`);
    expect(first.map((e) => e.action)).toEqual(["member.remove", "member.role"]);
    const next = await list(`/api/v1/orgs/${w.ids.A}/audit?action=member&limit=2&before=${first[1]!.id}`);
    expect(next[0]!.action).toBe("member.add");
    expect(next.every((e) => e.id < first[1]!.id && e.action.startsWith("member."))).toBe(true);
  });

  test("the appliance's log takes the same filters; another organization's entries stay out", async () => {
    const all = await list("/api/v1/audit?action=member.role", "admin");
    expect(all.map((e) => e.org_id)).toEqual([w.ids.A]);
    expect(await list(`/api/v1/orgs/${w.ids.B}/audit?action=member.role`, "admin")).toEqual([]);
  });

  test("bad values are refused, naming the field", async () => {
    for (const [q, field] of [
      ["since=yesterday", "since"],
      ["until=2026-13-45T99:00:00Z", "until"],
      ["since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"],
      ["action=Member%20Add", "action"],
      ["actor=", "actor"],
    ] as const) {
      const r = await w.call("ownerA", "GET", `/api/v1/orgs/${w.ids.A}/audit?${q}`);
      expect(r.status).toBe(400);
      const problem = (await r.json()) as { errors?: { pointer: string }[] };
      expect(problem.errors?.map((e) => e.pointer.replace(/^\//, ""))).toContain(field);
    }
  });

  test("a member who is not an owner, and another tenant, are refused as before", async () => {
    expect((await w.call("userA", "GET", `/api/v1/orgs/${w.ids.A}/audit?action=member`)).status).toBe(403);
    expect((await w.call("ownerB", "GET", `/api/v1/orgs/${w.ids.A}/audit?action=member`)).status).toBe(404);
  });
});
