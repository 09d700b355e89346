/**
 * @module test/e2e/token-expiry
 * A token never mints one that outlives it: an organization token (or a user token) that
 * expires makes tokens that expire with it when no expiry is asked, and a later expiry is
 * refused with 400 and nothing created. Tokens made from a session or a non-expiring token keep
 * what was asked.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { makeWorld, type World } from "../support/world.ts";

let w: World;
beforeEach(async () => (w = await makeWorld()));
afterEach(() => w.close());

const DAY = 86400_000;
type Created = { id: string; token: string; expires_at: string | null };

async function create(bearer: string, body: Record<string, unknown>): Promise<Response> {
  return w.handle(
    new Request("http://localhost/api/v1/tokens", {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  );
}
const count = () => (w.db.query("SELECT count(*) AS n FROM api_tokens").get() as { n: number }).n;

describe("minted tokens never outlive the token that minted them", () => {
  test("an organization token that expires in 2 days: a project token gets its expiry, a later one is refused", async () => {
    const parentExpiry = new Date(Date.now() + 2 * DAY).toISOString();
    const orgToken = (await (
      await w.call("ownerB", "POST", "/api/v1/tokens", {
        kind: "org",
        org: w.ids.B,
        name: "ci",
        expires_at: parentExpiry,
      })
    ).json()) as Created;
    expect(orgToken.expires_at).toBe(parentExpiry);

    // No expiry asked: the new token expires with its parent (before: never).
    const unbounded = await create(orgToken.token, { kind: "project", project: w.ids.q1, name: "deploy" });
    expect(unbounded.status).toBe(201);
    expect(((await unbounded.json()) as Created).expires_at).toBe(parentExpiry);

    // A later expiry: refused, nothing made.
    const before = count();
    const later = await create(orgToken.token, {
      kind: "project",
      project: w.ids.q1,
      name: "forever",
      expires_at: new Date(Date.now() + 365 * DAY).toISOString(),
    });
    expect(later.status).toBe(400);
    expect(later.headers.get("content-type")).toContain("application/problem+json");
    expect(((await later.json()) as { detail: string }).detail).toContain("cannot outlive the one that made it");
    expect(count()).toBe(before);

    // An earlier one is kept as asked.
    const sooner = new Date(Date.now() + 3600_000).toISOString();
    const short = await create(orgToken.token, {
      kind: "project",
      project: w.ids.q1,
      name: "short",
      expires_at: sooner,
    });
    expect(((await short.json()) as Created).expires_at).toBe(sooner);
  });

  test("a user token that expires (a device login's) cannot make a permanent one; a non-expiring token still can", async () => {
    const parentExpiry = new Date(Date.now() + 7 * DAY).toISOString();
    const userToken = (await (
      await w.call("userA", "POST", "/api/v1/tokens", { kind: "user", name: "laptop", expires_at: parentExpiry })
    ).json()) as Created;
    const child = (await (await create(userToken.token, { kind: "user", name: "stash" })).json()) as Created;
    expect(child.expires_at).toBe(parentExpiry);
    const permanent = await w.call("userA", "POST", "/api/v1/tokens", { kind: "user", name: "kept" }); // userA's own token has no expiry
    expect(((await permanent.json()) as Created).expires_at).toBeNull();
  });
});
