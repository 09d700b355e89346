/**
 * @module test/e2e/ui-device
 * The device-login approval page (/device) in a real browser against the compiled binary: a
 * link carrying the code (as a phisher would send it) never fills it in, the UI's sign-in comes
 * first, nothing can be approved until the person types the code, the request's origin is shown
 * before the client's unverified name, approving completes the CLI's poll with a working token,
 * and denying ends the login with no token.
 */
import { expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { waitFor } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

integrationSuite("web UI: device login approval", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-device-", adminPassword: PASSWORD });

  /** What the CLI does: start a device login (with its user agent and self-declared name). */
  async function startLogin(clientName: string) {
    const r = await world.server.get("/api/v1/auth/device", {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "slipway-ui-test/1.0" },
      body: JSON.stringify({ client_name: clientName }),
    });
    expect(r.status).toBe(200);
    const started = (await r.json()) as { device_code: string; user_code: string };
    const poll = () =>
      world.server.get("/api/v1/auth/device/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ device_code: started.device_code }),
      });
    return { ...started, poll };
  }

  /** Polls as the CLI does until the answer is no longer "pending" (or slow down). */
  async function pollUntilDecided(poll: () => Promise<Response>): Promise<Response> {
    let res = await poll();
    for (const deadline = Date.now() + 60_000; (res.status === 202 || res.status === 429) && Date.now() < deadline; ) {
      await Bun.sleep(1000); // the CLI's own interval: polls closer than it are told to slow down
      res = await poll();
    }
    return res;
  }

  /** Requests the page made that are not answered yet. */
  function trackRequests(page: Page): () => number {
    let inflight = 0;
    page.on("request", () => inflight++);
    page.on("requestfinished", () => inflight--);
    page.on("requestfailed", () => inflight--);
    return () => inflight;
  }

  test("a phishing link's code is not used; typed, checked and approved, the CLI gets a working token", async () => {
    const login = await startLogin("ui-test");
    expect((await login.poll()).status).toBe(202);

    // The link carries the code both ways a phisher could send it.
    const page = await openPage(
      world.browser,
      world.server,
      `/device?code=${login.user_code}#${login.user_code}`,
      world.foreign,
    );
    const pending = trackRequests(page);
    const url = new URL(page.url());
    expect(url.pathname + url.search + url.hash).toBe("/device"); // gone before anything rendered
    // Signed out: the UI's own sign-in first.
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await checkPage(page, "device-sign-in");
    await signIn(page, "admin", PASSWORD);
    await page.getByRole("heading", { name: "Approve a CLI login" }).waitFor();
    // Every request the page made is answered: nothing still on its way could fill the code in.
    await waitFor("the page's requests to be answered", () => pending() === 0, 30_000);
    const code = page.getByRole("textbox", { name: "Code" });
    expect(await code.inputValue()).toBe("");
    expect(await page.getByRole("button", { name: "Approve" }).count()).toBe(0); // nothing to approve yet
    expect(await page.getByRole("button", { name: "Deny" }).count()).toBe(0);
    const after = new URL(page.url());
    expect(after.pathname + after.search + after.hash).toBe("/device");
    await checkPage(page, "device");

    await code.fill(login.user_code.toLowerCase());
    await page.getByRole("button", { name: "Look up" }).click();
    await page.getByRole("button", { name: "Approve" }).waitFor();
    expect(await page.getByTestId("req-code").textContent()).toBe(login.user_code);
    // Where the request came from, and the client's own (unverified) name last.
    expect(await page.getByTestId("req-ip").textContent()).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/);
    expect(await page.getByTestId("req-agent").textContent()).toBe("slipway-ui-test/1.0");
    // Made moments ago (a loaded machine may take the test past the 45 s "just now" shows for).
    expect(await page.getByTestId("req-at").textContent()).toMatch(/^(just now|1 min ago) \(/);
    expect(await page.getByTestId("req-days").textContent()).toBe("30 days");
    expect(await page.getByTestId("req-client").textContent()).toBe("ui-test");
    const terms = await page.locator(".device-request dt").allTextContents();
    expect(terms.at(-1)).toBe("The client's own name for itself (not verified)");
    expect(terms.indexOf("From address")).toBe(0);
    await checkPage(page, "device-request");
    // Still pending until the person decides.
    expect((await login.poll()).status).not.toBe(200);

    await page.getByRole("button", { name: "Approve" }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /^Approved/ })
      .waitFor();
    await page.context().close();

    const done = await pollUntilDecided(login.poll);
    expect(done.status).toBe(200);
    const { token } = (await done.json()) as { token: string };
    const me = await world.server.get("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { username: string }).username).toBe("admin");
  }, 120_000);

  test("denied in the browser, the CLI's login ends without a token", async () => {
    const login = await startLogin("someone-else");
    const page = await openPage(world.browser, world.server, "/device", world.foreign);
    await signIn(page, "admin", PASSWORD);
    await page.getByRole("textbox", { name: "Code" }).fill(login.user_code);
    await page.getByRole("button", { name: "Look up" }).click();
    await page.getByRole("button", { name: "Deny" }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /^Denied/ })
      .waitFor();
    expect(await page.getByRole("button", { name: "Approve" }).count()).toBe(0);

    const done = await pollUntilDecided(login.poll);
    expect(done.status).toBe(410);
    // The code cannot be approved afterwards either.
    await page.getByRole("textbox", { name: "Code" }).fill(login.user_code);
    await page.getByRole("button", { name: "Look up" }).click();
    await page
      .getByRole("alert")
      .filter({ hasText: /^Cannot find that code/ })
      .waitFor();
    await page.context().close();
  }, 120_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
