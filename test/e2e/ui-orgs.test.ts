/**
 * @module test/e2e/ui-orgs
 * An organization's pages in a real browser against the compiled binary: members (add, change
 * role, the last owner kept, remove), what a member who is not an owner sees and may send, the
 * audit log's filters and pages (checked against the API), the settings (rename; quotas by the
 * administrator), the organization switcher, and another organization's pages as not found.
 */
import { beforeAll, expect, test } from "bun:test";
import type { AuditEntryView, MemberView, OrgView, QuotaReportView } from "../../src/orgs/models.ts";
import { browserMissing, checkPage, json, uiWorld } from "../support/browser.ts";
import { waitFor } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

integrationSuite("web UI: organization pages", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-orgs-", adminPassword: PASSWORD });

  const { asAdmin, byHand, signedIn } = world;
  const members = () => json<MemberView[]>(asAdmin("GET", "/api/v1/orgs/acme/members"));
  const roleOf = async (username: string) => (await members()).find((m) => m.username === username)?.role;

  beforeAll(async () => {
    for (const username of ["olga", "uma", "victor"])
      expect((await asAdmin("POST", "/api/v1/users", { username, password: PASSWORD })).status).toBe(201);
    // acme: olga its only owner; other: the administrator's, olga and uma not in it.
    expect((await asAdmin("POST", "/api/v1/orgs", { slug: "acme", name: "Acme", owner: "olga" })).status).toBe(201);
    expect((await asAdmin("POST", "/api/v1/orgs", { slug: "other", name: "Other" })).status).toBe(201);
    expect((await asAdmin("POST", "/api/v1/orgs/acme/members", { user: "victor", role: "user" })).status).toBe(201);
  });

  test("members: add, change a role, the last owner kept with the API's message, remove", async () => {
    const page = await signedIn("olga", "/orgs/acme/members");
    await page.getByRole("heading", { name: "Members", level: 1 }).waitFor();
    const row = (username: string) => page.locator(`tr[data-member="${username}"]`);
    await row("olga").waitFor();
    // The only owner: neither a role to pick nor a remove button.
    expect(await row("olga").getByRole("combobox").count()).toBe(0);
    expect(await row("olga").getByRole("button").count()).toBe(0);
    expect(await row("olga").textContent()).toContain("the last owner");
    await checkPage(page, "org-members");

    // Add uma as a user.
    await page.getByRole("textbox", { name: "Username" }).fill("uma");
    await page.getByLabel("Role", { exact: true }).selectOption("user");
    await page.getByRole("button", { name: "Add member" }).click();
    await row("uma").waitFor();
    expect(await roleOf("uma")).toBe("user");
    // Someone who does not exist: the API's message in the form.
    await page.getByRole("textbox", { name: "Username" }).fill("nobody-here");
    await page.getByRole("button", { name: "Add member" }).click();
    await page.getByRole("alert").filter({ hasText: "nobody-here" }).waitFor();

    // Make uma an owner: olga is no longer the last one, so she may be demoted now.
    await page.getByRole("combobox", { name: "Role of uma" }).selectOption("owner");
    await page.getByRole("combobox", { name: "Role of olga" }).waitFor();
    expect(await roleOf("uma")).toBe("owner");

    // Behind this page's back uma is demoted again: olga is the last owner, and the page, not yet
    // knowing, offers to demote her. The API refuses; its message is shown; her role stays.
    expect((await asAdmin("PATCH", "/api/v1/orgs/acme/members/uma", { role: "user" })).status).toBe(200);
    await page.getByRole("combobox", { name: "Role of olga" }).selectOption("user");
    await page.getByRole("alert").filter({ hasText: "at least one owner" }).waitFor();
    expect(await roleOf("olga")).toBe("owner");
    // The table shows the API's state again: olga the last owner, with no controls.
    await row("olga").getByRole("combobox").waitFor({ state: "detached" });
    expect(await row("olga").textContent()).toContain("owner");
    // By hand, the same answer.
    const demote = await byHand(page, "PATCH", "/api/v1/orgs/acme/members/olga", { role: "user" });
    expect(demote.status()).toBe(409);
    expect(((await demote.json()) as { detail: string }).detail).toContain("at least one owner");

    // Remove uma, after confirming.
    await row("uma").getByRole("button", { name: "Remove uma" }).click();
    const dialog = page.getByRole("dialog", { name: "Remove member" });
    await dialog.waitFor();
    await dialog.getByRole("button", { name: "Remove member" }).click();
    await row("uma").waitFor({ state: "detached" });
    expect(await roleOf("uma")).toBeUndefined();
    await page.context().close();
  }, 180_000);

  test("a member who is not an owner sees the members only, and is refused what they send by hand", async () => {
    const page = await signedIn("victor", "/orgs/acme/members");
    await page.locator('tr[data-member="olga"]').waitFor();
    expect(await page.getByRole("button", { name: "Add member" }).count()).toBe(0);
    expect(await page.getByRole("combobox", { name: /^Role of/ }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /^Remove/ }).count()).toBe(0);
    await checkPage(page, "org-members-user");

    expect((await byHand(page, "POST", "/api/v1/orgs/acme/members", { user: "uma", role: "owner" })).status()).toBe(
      403,
    );
    expect((await byHand(page, "PATCH", "/api/v1/orgs/acme/members/victor", { role: "owner" })).status()).toBe(403);
    expect((await byHand(page, "PATCH", "/api/v1/orgs/acme", { name: "Mine now" })).status()).toBe(403);
    expect((await byHand(page, "PUT", "/api/v1/orgs/acme/quotas", { max_projects: 1000 })).status()).toBe(403);
    expect(await roleOf("victor")).toBe("user");

    // The audit log is the owners'; the settings read-only.
    await page.goto(`${world.server.url}/orgs/acme/audit`);
    await page.getByText("Only the organization's owners read its audit log.").waitFor();
    await checkPage(page, "org-audit-user");
    await page.goto(`${world.server.url}/orgs/acme/settings`);
    await page.locator('tr[data-quota="max_projects"]').waitFor();
    expect(await page.getByRole("button", { name: "Save settings" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Save quotas" }).count()).toBe(0);
    await checkPage(page, "org-settings-user");

    // Another organization's pages are not found, exactly like a missing one.
    for (const path of ["/orgs/other/members", "/orgs/no-such-org/members", "/orgs/other/audit"]) {
      await page.goto(`${world.server.url}${path}`);
      await page.getByRole("heading", { name: "Not found" }).waitFor();
    }
    await checkPage(page, "org-other-not-found");
    await page.context().close();
  }, 180_000);

  test("audit log: filters narrow to the entries the API returns for them; older and newer pages", async () => {
    // Enough entries for more than one page (25 a page).
    for (let i = 0; i < 30; i++)
      expect((await asAdmin("PATCH", "/api/v1/orgs/acme", { name: `Acme ${i}` })).status).toBe(200);
    const api = (q: string) => json<AuditEntryView[]>(asAdmin("GET", `/api/v1/orgs/acme/audit?limit=500${q}`));
    const page = await signedIn("olga", "/orgs/acme/audit");
    const ids = async () =>
      await page.locator("tr[data-audit]").evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-audit"))));
    /** The table shows exactly these entries (after the page's reload, however long it takes). */
    const shows = async (expected: number[]) => {
      let seen: number[] = [];
      await waitFor(
        `audit rows ${expected.join(",")} (seeing ${seen.join(",")})`,
        async () => {
          seen = await ids();
          return JSON.stringify(seen) === JSON.stringify(expected);
        },
        30_000,
      ).catch(() => expect(seen).toEqual(expected));
    };

    const all = await api("");
    await shows(all.slice(0, 25).map((e) => e.id));
    // Entries read as who, what, on what: olga's additions name her and the member.
    const add = all.find((e) => e.action === "member.add" && e.target_name === "uma")!;
    expect(await page.locator(`tr[data-audit="${add.id}"]`).count()).toBe(0); // on a later page
    await checkPage(page, "org-audit");

    // Older, then newer.
    await page.getByRole("button", { name: "Older entries" }).click();
    await shows(all.slice(25, 50).map((e) => e.id));
    await page.getByRole("button", { name: "Newer entries" }).click();
    await shows(all.slice(0, 25).map((e) => e.id));
    expect(await page.getByRole("button", { name: "Newer entries" }).isDisabled()).toBe(true);

    // By action family.
    await page.getByLabel("Action").fill("member");
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    const memberEntries = await api("&action=member");
    expect(memberEntries.length).toBeGreaterThanOrEqual(4);
    expect(memberEntries.length).toBeLessThan(25);
    await shows(memberEntries.map((e) => e.id));
    const addRow = page.locator(`tr[data-audit="${add.id}"]`);
    expect(await addRow.textContent()).toContain("olga");
    expect(await addRow.textContent()).toContain("member.add");
    expect(await addRow.textContent()).toContain("uma");
    expect(await page.getByRole("button", { name: "Older entries" }).isDisabled()).toBe(true);

    // By who (a username), with the action still set: the administrator's demotion of uma only.
    await page.getByLabel("Who").fill("admin");
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    const byAdmin = await api("&action=member&actor=admin");
    expect(byAdmin.map((e) => e.action)).toEqual(["member.role", "member.add"]);
    await shows(byAdmin.map((e) => e.id));

    // By time: nothing after tomorrow.
    await page.getByRole("button", { name: "Clear filters" }).click();
    await shows(all.slice(0, 25).map((e) => e.id));
    const tomorrow = new Date(Date.now() + 86400_000);
    const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.getByLabel("From").fill(local);
    await page.getByRole("button", { name: "Filter", exact: true }).click();
    await page.getByText("No entries match these filters.").waitFor();
    expect(await api(`&since=${encodeURIComponent(tomorrow.toISOString())}`)).toEqual([]);
    await page.context().close();
  }, 180_000);

  test("settings: owners rename; quotas read-only for them, changed by the administrator", async () => {
    const page = await signedIn("olga", "/orgs/acme/settings");
    await page.getByRole("textbox", { name: "Name" }).fill("Acme Corporation");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    expect((await json<OrgView>(asAdmin("GET", "/api/v1/orgs/acme"))).name).toBe("Acme Corporation");
    // The switcher names it so too.
    await page
      .getByRole("combobox", { name: "Organization" })
      .getByRole("option", { name: "Acme Corporation" })
      .waitFor({
        state: "attached",
      });
    expect(await page.getByRole("button", { name: "Save quotas" }).count()).toBe(0);
    await checkPage(page, "org-settings");
    await page.context().close();

    const admin = await signedIn("admin", "/orgs/acme/settings");
    await admin.getByRole("spinbutton", { name: "Projects" }).fill("7");
    await admin.getByRole("button", { name: "Save quotas" }).click();
    await admin.getByRole("status").filter({ hasText: "Quotas saved." }).waitFor();
    const report = await json<QuotaReportView>(asAdmin("GET", "/api/v1/orgs/acme/quotas"));
    expect(report.limits.max_projects).toBe(7);
    expect(report.overrides.max_projects).toBe(7);
    expect(await admin.locator('tr[data-quota="max_projects"]').textContent()).toContain("this organization");
    // Out of range: the API's message, nothing changed.
    await admin.getByRole("spinbutton", { name: "CPUs per builder" }).fill("100000");
    await admin.getByRole("button", { name: "Save quotas" }).click();
    await admin.getByRole("alert").first().waitFor();
    expect((await json<QuotaReportView>(asAdmin("GET", "/api/v1/orgs/acme/quotas"))).overrides.max_builder_cpus).toBe(
      undefined,
    );
    await checkPage(admin, "org-settings-admin");
    await admin.context().close();
  }, 180_000);

  test("the organization switcher shows the chosen organization's page", async () => {
    const page = await signedIn("admin", "/orgs/default/members");
    await page.locator('tr[data-member="admin"]').waitFor();
    await page.getByRole("combobox", { name: "Organization" }).selectOption({ label: "Acme Corporation" });
    await page.waitForURL(/\/orgs\/acme\/members$/);
    await page.locator('tr[data-member="olga"]').waitFor();
    expect(await page.locator('tr[data-member="admin"]').count()).toBe(0);
    expect(await page.getByRole("combobox", { name: "Organization" }).inputValue()).toBe("acme");
    await page.getByRole("link", { name: "Settings" }).click();
    await page.waitForURL(/\/orgs\/acme\/settings$/);
    await page.getByRole("combobox", { name: "Organization" }).selectOption({ label: "Other" });
    await page.waitForURL(/\/orgs\/other\/settings$/);
    expect(await page.getByRole("textbox", { name: "Name" }).inputValue()).toBe("Other");
    await page.context().close();
  }, 120_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
