/**
 * @module test/e2e/device-login
 * The CLI's device login, server side: start, poll (pending, too fast, approved once, then
 * gone), approval by a logged-in person, denial, and codes of other people's flows. Against
 * phishing: no link carries the code, the approver sees the client's address, user agent and
 * time, the token lives auth.device_token_days (30 by default), and starts are rate-limited.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { deviceLoginServiceFactory } from "../../src/auth/device-login.ts";
import { tokensServiceFactory } from "../../src/auth/api-tokens.ts";
import { configSchema } from "../../src/config/schema.ts";
import { makeWorld, type World } from "../support/world.ts";

let w: World;
beforeEach(async () => (w = await makeWorld()));
afterEach(() => w.close());

const UA = "slipway/9.9.9 (test)";
const post = (path: string, body: unknown) =>
  w.handle(
    new Request(`http://localhost${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": UA },
      body: JSON.stringify(body),
    }),
  );
async function start() {
  const r = await post("/api/v1/auth/device", { client_name: "laptop" });
  expect(r.status).toBe(200);
  return (await r.json()) as {
    device_code: string;
    user_code: string;
    verification_uri: string;
    interval: number;
    expires_in: number;
  };
}
const poll = (device_code: string) => post("/api/v1/auth/device/token", { device_code });

describe("device login", () => {
  test("pending, then approved once with a working token, then gone", async () => {
    const d = await start();
    expect(d.user_code).toMatch(/^[BCDFGHJKMNPQRSTVWXZ]{4}-[BCDFGHJKMNPQRSTVWXZ]{4}$/);
    // No link with the code filled in: the person must type what their terminal shows.
    expect(d.verification_uri).toBe("https://slipway.example.com/device");
    expect(JSON.stringify(d)).not.toContain(`code=`);
    expect(Object.keys(d).sort()).toEqual(["device_code", "expires_in", "interval", "user_code", "verification_uri"]);
    expect(d.expires_in).toBe(600);
    expect((await poll(d.device_code)).status).toBe(202);
    expect((await poll(d.device_code)).status).toBe(429); // faster than the interval

    // What the approver is shown: where the request came from, with what, and when.
    const info = await w.call("userA", "GET", `/api/v1/auth/device/${d.user_code.toLowerCase().replace("-", " ")}`);
    const shown = (await info.json()) as {
      client_name: string;
      ip: string;
      user_agent: string;
      created_at: string;
      token_lifetime_days: number;
    };
    expect(shown).toMatchObject({ client_name: "laptop", ip: "192.0.2.1", user_agent: UA, token_lifetime_days: 30 });
    expect(Math.abs(Date.parse(shown.created_at) - Date.now())).toBeLessThan(10_000);
    expect((await w.call("userA", "POST", "/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(204);

    await Bun.sleep(d.interval * 1000);
    const ok = await poll(d.device_code);
    expect(ok.status).toBe(200);
    const { token, token_id } = (await ok.json()) as { token: string; token_id: string };
    // 30 days by default (it was 90), not a quarter of the person's full rights.
    const { expires_at } = w.db.query("SELECT expires_at FROM api_tokens WHERE id = ?").get(token_id) as {
      expires_at: string;
    };
    expect(Math.abs(Date.parse(expires_at) - (Date.now() + 30 * 86400_000))).toBeLessThan(60_000);
    const me = await w.handle(
      new Request("http://localhost/api/v1/me", { headers: { authorization: `Bearer ${token}` } }),
    );
    expect(((await me.json()) as { username: string }).username).toBe("userA");

    await Bun.sleep(d.interval * 1000);
    expect((await poll(d.device_code)).status).toBe(410);
    expect(w.audit.list({ limit: 5 }).some((e) => e.action === "auth.device.approve")).toBe(true);
  }, 15_000);

  test("the token's lifetime follows auth.device_token_days", async () => {
    expect(configSchema.parse({}).auth.device_token_days).toBe(30);
    expect(configSchema.parse({ auth: { device_token_days: 7 } }).auth.device_token_days).toBe(7);
    expect(() => configSchema.parse({ auth: { device_token_days: 0 } })).toThrow();
    const tokens = tokensServiceFactory({ db: w.db, audit: w.audit });
    const logins = deviceLoginServiceFactory({ db: w.db, audit: w.audit, tokens, tokenLifetimeMs: 7 * 86400_000 });
    const d = logins.start({ clientName: null, ip: "192.0.2.9", userAgent: null }, "https://slipway.example.com");
    logins.approve(
      d.user_code,
      { kind: "user", userId: w.ids.userA, username: "userA", isAdmin: false, tokenId: null, memberships: {} },
      null,
    );
    const r = logins.poll(d.device_code);
    if (r.status !== "approved") throw new Error("not approved");
    expect(Date.parse(tokens.get(r.token_id).expires_at!) - Date.now()).toBeWithin(
      7 * 86400_000 - 60_000,
      7 * 86400_000 + 1,
    );
  });

  test("starts are limited to 10 a minute per address (429 with Retry-After)", async () => {
    for (let i = 0; i < 10; i++) expect((await post("/api/v1/auth/device", {})).status).toBe(200);
    const r = await post("/api/v1/auth/device", {});
    expect(r.status).toBe(429);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  test("a denied login never yields a token", async () => {
    const d = await start();
    expect((await w.call("userB", "POST", "/api/v1/auth/device/deny", { user_code: d.user_code })).status).toBe(204);
    expect((await poll(d.device_code)).status).toBe(410);
  });

  test("only people approve: tokens other than user tokens, and anonymous callers, cannot", async () => {
    const d = await start();
    expect((await post("/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(401);
    expect((await w.call("tokA1", "POST", "/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(403);
    expect((await w.call("orgTokB", "POST", "/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(
      403,
    );
    expect((await w.call("userA", "POST", "/api/v1/auth/device/approve", { user_code: "BBBB-BBBB" })).status).toBe(404);
  });

  test("unknown device codes and bad input", async () => {
    expect((await poll("not-a-real-code")).status).toBe(410);
    expect((await post("/api/v1/auth/device/token", {})).status).toBe(400);
    expect((await post("/api/v1/auth/device", { client_name: "x".repeat(500) })).status).toBe(400);
    for (const spoof of ["laptop\nFrom address: 10.0.0.1", "\u202egnp.exe", "a\u0000b"])
      expect((await post("/api/v1/auth/device", { client_name: spoof })).status).toBe(400);
    expect((await post("/api/v1/auth/device", { client_name: "slipway 1.0 on büro-laptop" })).status).toBe(200);
  });

  test("the approval page is served", async () => {
    const r = await w.handle(new Request("http://localhost/device?code=BCDF-GHJK"));
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('<script type="module" src="/ui/app.js"></script>');
    expect((await w.handle(new Request("http://localhost/ui/app.js"))).status).toBe(200);
  });
});
