/**
 * @module test/e2e/device-login
 * The CLI's device login, server side: start, poll (pending, too fast, approved once, then
 * gone), approval by a logged-in person, denial, and codes of other people's flows.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { makeWorld, type World } from "../support/world.ts";

let w: World;
beforeEach(async () => (w = await makeWorld()));
afterEach(() => w.close());

const post = (path: string, body: unknown) => w.handle(new Request(`http://localhost${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }));
async function start() {
  const r = await post("/api/v1/auth/device", { client_name: "laptop" });
  expect(r.status).toBe(200);
  return (await r.json()) as { device_code: string; user_code: string; verification_uri_complete: string; interval: number; expires_in: number };
}
const poll = (device_code: string) => post("/api/v1/auth/device/token", { device_code });

describe("device login", () => {
  test("pending, then approved once with a working token, then gone", async () => {
    const d = await start();
    expect(d.user_code).toMatch(/^[BCDFGHJKMNPQRSTVWXZ]{4}-[BCDFGHJKMNPQRSTVWXZ]{4}$/);
    expect(d.verification_uri_complete).toBe(`https://slipway.example.com/device?code=${d.user_code}`);
    expect(d.expires_in).toBe(600);
    expect((await poll(d.device_code)).status).toBe(202);
    expect((await poll(d.device_code)).status).toBe(429); // faster than the interval

    const info = await w.call("userA", "GET", `/api/v1/auth/device/${d.user_code.toLowerCase().replace("-", " ")}`);
    expect(((await info.json()) as { client_name: string }).client_name).toBe("laptop");
    expect((await w.call("userA", "POST", "/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(204);

    await Bun.sleep(d.interval * 1000);
    const ok = await poll(d.device_code);
    expect(ok.status).toBe(200);
    const { token } = (await ok.json()) as { token: string };
    const me = await w.handle(new Request("http://localhost/api/v1/me", { headers: { authorization: `Bearer ${token}` } }));
    expect(((await me.json()) as { username: string }).username).toBe("userA");

    await Bun.sleep(d.interval * 1000);
    expect((await poll(d.device_code)).status).toBe(410);
    expect(w.audit.list({ limit: 5 }).some((e) => e.action === "auth.device.approve")).toBe(true);
  }, 15_000);

  test("a denied login never yields a token", async () => {
    const d = await start();
    expect((await w.call("userB", "POST", "/api/v1/auth/device/deny", { user_code: d.user_code })).status).toBe(204);
    expect((await poll(d.device_code)).status).toBe(410);
  });

  test("only people approve: tokens other than user tokens, and anonymous callers, cannot", async () => {
    const d = await start();
    expect((await post("/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(401);
    expect((await w.call("tokA1", "POST", "/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(403);
    expect((await w.call("orgTokB", "POST", "/api/v1/auth/device/approve", { user_code: d.user_code })).status).toBe(403);
    expect((await w.call("userA", "POST", "/api/v1/auth/device/approve", { user_code: "BBBB-BBBB" })).status).toBe(404);
  });

  test("unknown device codes and bad input", async () => {
    expect((await poll("not-a-real-code")).status).toBe(410);
    expect((await post("/api/v1/auth/device/token", {})).status).toBe(400);
    expect((await post("/api/v1/auth/device", { client_name: "x".repeat(500) })).status).toBe(400);
  });

  test("the approval page is served", async () => {
    const r = await w.handle(new Request("http://localhost/device?code=BCDF-GHJK"));
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('<script src="/ui/device.js"></script>');
    expect((await w.handle(new Request("http://localhost/ui/device.js"))).status).toBe(200);
  });
});
