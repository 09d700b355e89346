/**
 * @module test/e2e/ui-account
 * The account page in a real browser against the compiled binary: changing one's password
 * (the API's message for a wrong current one, signing in with the new one), the web sessions
 * with the current one marked, revoking another (its cookie is refused at once) and revoking
 * this one (signed out).
 */
import { beforeAll, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { integrationSuite } from "../support/integration.ts";

const ADMIN_PASSWORD = "a long enough passphrase";
const FIRST = "alice's first passphrase";
const SECOND = "alice's second passphrase";

integrationSuite("web UI: the account page", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-account-", adminPassword: ADMIN_PASSWORD });

  const { asAdmin } = world;
  /** The API's answer to `page`'s own cookie. */
  const meStatus = async (page: Page) => (await page.request.get(`${world.server.url}/api/v1/me`)).status();
  const sessionsOf = async (page: Page) =>
    (await (await page.request.get(`${world.server.url}/api/v1/auth/sessions`)).json()) as {
      id: string;
      current: boolean;
    }[];

  beforeAll(async () => {
    expect((await asAdmin("POST", "/api/v1/users", { username: "alice", password: FIRST })).status).toBe(201);
    expect((await asAdmin("POST", "/api/v1/orgs/default/members", { user: "alice", role: "user" })).status).toBe(201);
    // Another person for the last test: logins are rate limited per username (5 a minute).
    expect((await asAdmin("POST", "/api/v1/users", { username: "bob", password: FIRST })).status).toBe(201);
  });

  test("sessions: this one marked, another revoked (its cookie refused at once)", async () => {
    const laptop = await openPage(world.browser, world.server, "/account", world.foreign);
    await signIn(laptop, "alice", FIRST);
    const phone = await openPage(world.browser, world.server, "/account", world.foreign);
    await signIn(phone, "alice", FIRST);
    expect(await meStatus(phone)).toBe(200);

    await laptop.reload();
    await laptop.getByRole("heading", { name: "Your account" }).waitFor();
    const rows = laptop.locator("tr[data-session]");
    await rows.nth(1).waitFor();
    expect(await rows.count()).toBe(2);
    const mine = laptop.locator("tr[data-session]", { hasText: "(this browser)" });
    expect(await mine.count()).toBe(1);
    expect(await laptop.getByRole("link", { name: "Your tokens" }).getAttribute("href")).toBe("/account/tokens");
    await checkPage(laptop, "account");

    // The phone's session is the other row.
    const phoneSession = (await sessionsOf(phone)).find((s) => s.current)!.id;
    const other = laptop.locator(`tr[data-session="${phoneSession}"]`);
    expect(await other.textContent()).not.toContain("(this browser)");
    await other.getByRole("button", { name: "Revoke" }).click();
    const dialog = laptop.getByRole("dialog", { name: "Revoke session" });
    await dialog.waitFor();
    await dialog.getByRole("button", { name: "Revoke session" }).click();
    await other.waitFor({ state: "detached" });

    expect(await meStatus(phone)).toBe(401);
    expect(await meStatus(laptop)).toBe(200);
    expect((await sessionsOf(laptop)).map((s) => s.id)).not.toContain(phoneSession);
    await laptop.context().close();
    await phone.context().close();
  }, 120_000);

  test("password: a wrong current one is the API's message; the new one signs in, the old one no longer", async () => {
    const page = await openPage(world.browser, world.server, "/account", world.foreign);
    await signIn(page, "alice", FIRST);
    await page.getByRole("heading", { name: "Password" }).waitFor();

    await page.getByLabel("Current password").fill("not my password at all");
    await page.getByLabel("New password", { exact: true }).fill(SECOND);
    await page.getByLabel("New password again").fill(SECOND);
    await page.getByRole("button", { name: "Change password" }).click();
    const alert = page.getByRole("alert").filter({ hasText: "current password is wrong" });
    await alert.waitFor();
    // Still signed in, still on the form.
    expect(await page.getByRole("button", { name: "Sign out" }).isVisible()).toBe(true);
    expect(await meStatus(page)).toBe(200);
    await checkPage(page, "account-password-error");

    await page.getByLabel("Current password").fill(FIRST);
    await page.getByLabel("New password", { exact: true }).fill(SECOND);
    await page.getByLabel("New password again").fill(SECOND);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByRole("status").filter({ hasText: "Password changed" }).waitFor();

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    const login = (password: string) =>
      world.server.get("/api/v1/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "alice", password }),
      });
    expect((await login(FIRST)).status).toBe(401);
    await signIn(page, "alice", SECOND);
    expect(await meStatus(page)).toBe(200);
    await page.context().close();
  }, 120_000);

  test("revoking this browser's own session signs out", async () => {
    const page = await openPage(world.browser, world.server, "/account", world.foreign);
    await signIn(page, "bob", FIRST);
    const mine = page.locator("tr[data-session]", { hasText: "(this browser)" });
    await mine.waitFor();
    await mine.getByRole("button", { name: "Revoke" }).click();
    await page.getByRole("dialog", { name: "Revoke session" }).getByRole("button", { name: "Revoke session" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect(await meStatus(page)).toBe(401);
    await page.context().close();
  }, 120_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
