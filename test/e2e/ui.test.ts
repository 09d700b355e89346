/**
 * @module test/e2e/ui
 * The web UI's frame in a real browser (Debian's Chromium driven by playwright-core), served
 * by the compiled binary: signing in and out, the session cookie out of script's reach, the
 * strict CSP, the not-found page, the API docs, and no request to anything but the appliance.
 * Each area's pages have their own suite (ui-*.test.ts).
 */
import { expect, test } from "bun:test";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

integrationSuite("web UI in a real browser", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-", adminPassword: PASSWORD });

  test("sign in, the cookie hidden from script, the CSP strict, sign out", async () => {
    const page = await openPage(world.browser, world.server, "/login", world.foreign);
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await checkPage(page, "login");

    // A wrong password: the API's message, still on the form.
    await page.getByRole("textbox", { name: "Username" }).fill("admin");
    await page.getByLabel("Password", { exact: true }).fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/password/i);

    await signIn(page, "admin", PASSWORD);
    // Home is the organization's projects.
    await page.waitForURL(/\/orgs\/default\/projects$/);
    expect(await page.getByRole("link", { name: "Projects", exact: true }).getAttribute("aria-current")).toBe("page");
    const cookies = await page.context().cookies();
    expect(cookies.length).toBeGreaterThan(0);
    expect(cookies.every((c) => c.httpOnly && c.secure && c.sameSite === "Strict")).toBe(true);
    expect(await page.evaluate("document.cookie")).toBe("");

    const res = await page.request.get(`${world.server.url}/orgs/default/projects`, {
      headers: { accept: "text/html" },
    });
    const csp = res.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    // An inline script is refused by the browser under that policy.
    const ran = await page.evaluate(`(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inline = 1";
      document.body.append(s);
      return window.__inline === 1;
    })()`);
    expect(ran).toBe(false);

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    // The session is gone on the server too: the API refuses the old cookie.
    expect((await page.request.get(`${world.server.url}/api/v1/me`)).status()).toBe(401);
    await page.context().close();
  }, 60_000);

  test("an unknown address is the UI's not-found page, the API's stays problem+json", async () => {
    const page = await openPage(world.browser, world.server, "/login", world.foreign);
    await signIn(page, "admin", PASSWORD);
    await page.goto(`${world.server.url}/no/such/page`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    await checkPage(page, "not-found");
    const api = await world.server.get("/api/v1/no-such-thing", { headers: { accept: "text/html" } });
    expect(api.status).toBe(404);
    expect(api.headers.get("content-type")).toContain("application/problem+json");
    await page.context().close();
  }, 60_000);

  test("the API docs render every documented operation, offline", async () => {
    const page = await openPage(world.browser, world.server, "/api/v1/docs", world.foreign);
    await page.locator(".opblock").first().waitFor({ timeout: 15_000 });
    const rendered = await page
      .locator(".opblock")
      .evaluateAll((els) =>
        els.map(
          (e) =>
            `${e.querySelector(".opblock-summary-method")?.textContent} ${e.querySelector(".opblock-summary-path")?.textContent}`,
        ),
      );
    const spec = (await (await world.server.get("/api/v1/openapi.json")).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(operations.length).toBeGreaterThan(30);
    expect(rendered.map((r) => r.replace(/\u200b/g, "")).sort()).toEqual(operations.sort());
    expect(await page.locator(".errors-wrapper").count()).toBe(0);
    await page.waitForLoadState("networkidle");
    await page.context().close();
  });

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
