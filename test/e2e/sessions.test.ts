/**
 * @module test/e2e/sessions
 * Password login for the web UI: argon2id passwords, cookie sessions that are Secure,
 * HttpOnly and SameSite=Strict, refusal of cross-site state changes, logout, rate limits per
 * address and per username, and audit records — on the real app and a real SQLite file.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { makeWorld, type World } from "../support/world.ts";

let w: World;
beforeEach(async () => (w = await makeWorld({ https: true })));
afterEach(() => w.close());

const PASSWORD = "correct horse battery staple";
const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});
const req = (path: string, init: RequestInit = {}) => w.handle(new Request(`http://localhost${path}`, init));
async function setPassword() {
  const r = await w.call("userA", "PUT", "/api/v1/me/password", { new_password: PASSWORD });
  expect(r.status).toBe(204);
}
async function login(password = PASSWORD, username = "userA") {
  return req("/api/v1/auth/login", json({ username, password }));
}
const cookieOf = (r: Response) => r.headers.get("set-cookie")!.split(";")[0]!;

describe("password login", () => {
  test("a wrong password and an unknown user fail alike, and are audited", async () => {
    await setPassword();
    const a = await login("wrong password!!");
    const b = await login(PASSWORD, "nobody");
    expect([a.status, b.status]).toEqual([401, 401]);
    expect(((await a.json()) as { detail: string }).detail).toBe(((await b.json()) as { detail: string }).detail);
    const failures = w.audit.list({ limit: 10 }).filter((e) => e.action === "auth.login" && e.outcome === "failure");
    expect(failures).toHaveLength(2);
    expect(JSON.stringify(failures)).not.toContain("wrong password");
  });

  test("login sets a Secure, HttpOnly, SameSite=Strict cookie that authenticates reads", async () => {
    await setPassword();
    const r = await login();
    expect(r.status).toBe(200);
    const set = r.headers.get("set-cookie")!;
    expect(set).toMatch(/^slipway_session=[A-Za-z0-9_-]{43}; /);
    for (const attr of ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"]) expect(set).toContain(attr);
    const me = await req("/api/v1/me", { headers: { cookie: cookieOf(r) } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { username: string }).username).toBe("userA");
    // Only a hash of the secret is stored.
    const secret = cookieOf(r).split("=")[1]!;
    expect(JSON.stringify(w.db.query("SELECT * FROM sessions").all())).not.toContain(secret);
  });

  test("state changes with a cookie need this server's Origin", async () => {
    await setPassword();
    const cookie = cookieOf(await login());
    const body = { kind: "user", name: "from-ui" };
    expect((await req("/api/v1/tokens", json(body, { cookie }))).status).toBe(403);
    expect((await req("/api/v1/tokens", json(body, { cookie, origin: "https://evil.example" }))).status).toBe(403);
    expect((await req("/api/v1/tokens", json(body, { cookie, referer: "https://evil.example/page" }))).status).toBe(
      403,
    );
    expect((await req("/api/v1/tokens", json(body, { cookie, origin: "http://localhost" }))).status).toBe(201);
    // Behind a proxy the browser's origin is the public URL's.
    expect((await req("/api/v1/tokens", json(body, { cookie, origin: "https://slipway.example.com" }))).status).toBe(
      201,
    );
  });

  test("logout ends the session", async () => {
    await setPassword();
    const cookie = cookieOf(await login());
    const out = await req("/api/v1/auth/logout", { method: "POST", headers: { cookie, origin: "http://localhost" } });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
    expect((await req("/api/v1/me", { headers: { cookie } })).status).toBe(401);
  });

  test("sessions can be listed and revoked", async () => {
    await setPassword();
    const cookie = cookieOf(await login());
    const list = (await (await w.call("userA", "GET", "/api/v1/auth/sessions")).json()) as { id: string }[];
    expect(list).toHaveLength(1);
    expect((await w.call("userB", "DELETE", `/api/v1/auth/sessions/${list[0]!.id}`)).status).toBe(404);
    expect((await w.call("userA", "DELETE", `/api/v1/auth/sessions/${list[0]!.id}`)).status).toBe(204);
    expect((await req("/api/v1/me", { headers: { cookie } })).status).toBe(401);
  });

  test("changing a password needs the current one; weak ones are refused", async () => {
    await setPassword();
    expect(
      (await w.call("userA", "PUT", "/api/v1/me/password", { new_password: "another long passphrase" })).status,
    ).toBe(401);
    expect(
      (await w.call("userA", "PUT", "/api/v1/me/password", { current_password: PASSWORD, new_password: "short" }))
        .status,
    ).toBe(400);
    expect(
      (
        await w.call("userA", "PUT", "/api/v1/me/password", {
          current_password: PASSWORD,
          new_password: "another long passphrase",
        })
      ).status,
    ).toBe(204);
    expect((await login("another long passphrase")).status).toBe(200);
  });

  test("login is rate limited per username, with Retry-After", async () => {
    await setPassword();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await login("wrong password!!")).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    const limited = await login();
    expect(limited.status).toBe(429); // even the right password, until the window passes
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.headers.get("content-type")).toBe("application/problem+json");
  });

  test("login is rate limited per address across usernames", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await login("x".repeat(12), `guess${i}`)).status);
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses[20]).toBe(429);
  });
});
