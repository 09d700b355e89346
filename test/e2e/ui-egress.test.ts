/**
 * @module test/e2e/ui-egress
 * The organization's egress page in a real browser against the compiled binary: the owner sets
 * the mode and the default, adds, changes and removes rules, registers a runner host (its agent
 * token shown once) and changes its scopes; what an agent reported shows grouped by destination
 * with counts, and "Allow …" creates the rule (API) and the audit entry. A member reads without
 * a change control and the API refuses a change sent with their session; another organization's
 * page is the not-found page. Each state checked against the API.
 */
import { beforeAll, expect, test } from "bun:test";
import type { DestinationView, HostView, PolicyView } from "../../src/egress/models.ts";
import { browserMissing, checkPage, uiWorld } from "../support/browser.ts";
import { waitFor } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

integrationSuite("web UI: egress", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-egress-", adminPassword: PASSWORD });

  const api = async <T>(method: string, path: string, body?: unknown, token = world.adminToken): Promise<T> => {
    const r = await world.server.get(path, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  const policy = () => api<PolicyView>("GET", "/api/v1/orgs/default/egress");

  beforeAll(async () => {
    // A member of the default organization (reads only) and an organization they are not in.
    await api("POST", "/api/v1/users", { username: "mia", password: PASSWORD });
    await api("POST", "/api/v1/orgs/default/members", { user: "mia", role: "user" });
    await api("POST", "/api/v1/orgs", { slug: "other", name: "Other" });
  });

  const { signedIn } = world;

  test("the owner sets the mode and default, adds, changes and removes rules", async () => {
    const page = await signedIn("admin", "/orgs/default/egress");
    await page.getByRole("heading", { name: "Egress", level: 1 }).waitFor();
    await checkPage(page, "egress-empty");

    await page.getByRole("radio", { name: /^Monitor/ }).check();
    await waitFor("mode monitor", async () => (await policy()).mode === "monitor", 30_000);
    await page.getByRole("combobox", { name: /^Default action/ }).selectOption("deny");
    await waitFor("default deny", async () => (await policy()).default_action === "deny", 30_000);

    // A bad target: the API's message under the field, nothing added.
    const form = page.getByRole("form", { name: "New rule" });
    await form.getByRole("textbox", { name: "Target" }).fill("exa*mple.com");
    await form.getByRole("button", { name: "Add rule" }).click();
    await form.locator(".field-error").waitFor();
    expect(await form.locator(".field-error").textContent()).toContain("wildcard");
    expect((await policy()).rules).toEqual([]);

    await form.getByRole("textbox", { name: "Target" }).fill("Registry.Example.com");
    await form.getByRole("textbox", { name: "Ports" }).fill("443");
    await form.getByRole("textbox", { name: "Comment" }).fill("images");
    await form.getByRole("button", { name: "Add rule" }).click();
    await page.getByRole("cell", { name: "registry.example.com", exact: true }).waitFor();
    await form.getByRole("combobox", { name: "Action" }).selectOption("deny");
    await form.getByRole("textbox", { name: "Target" }).fill("203.0.113.9");
    await form.getByRole("button", { name: "Add rule" }).click();
    await page.getByRole("cell", { name: "203.0.113.9/32", exact: true }).waitFor();
    let rules = (await policy()).rules;
    expect(rules.map((r) => [r.action, r.target, r.ports, r.comment])).toEqual([
      ["allow", "registry.example.com", "443", "images"],
      ["deny", "203.0.113.9/32", null, ""],
    ]);
    // Deny wins whatever the order, so the page lists deny rules first.
    const targets = await page.locator("table").first().locator("tbody td.mono").allTextContents();
    expect(targets).toEqual(["203.0.113.9/32", "registry.example.com"]);
    await checkPage(page, "egress-rules");

    // Change a rule in place.
    await page.getByRole("button", { name: "Edit rule registry.example.com" }).click();
    const edit = page.getByRole("form", { name: "Change rule registry.example.com" });
    await edit.getByRole("textbox", { name: "Target" }).fill("*.example.com");
    await edit.getByRole("textbox", { name: "Ports" }).fill("80, 443");
    await edit.getByRole("button", { name: "Save rule" }).click();
    await page.getByRole("cell", { name: "*.example.com", exact: true }).waitFor();
    rules = (await policy()).rules;
    expect(rules.find((r) => r.id === rules[0]!.id)).toMatchObject({ target: "*.example.com", ports: "80,443" });

    // Remove one, confirming.
    await page.getByRole("button", { name: "Remove 203.0.113.9/32" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove rule" }).click();
    await waitFor("rule removed", async () => (await policy()).rules.length === 1, 30_000);
    expect((await policy()).rules.map((r) => r.target)).toEqual(["*.example.com"]);
    await page.getByRole("cell", { name: "203.0.113.9/32", exact: true }).waitFor({ state: "detached" });
    await page.context().close();
  }, 120_000);

  test("runner hosts: the agent token once, scopes changed; reported events grouped and allowed in one click", async () => {
    const page = await signedIn("admin", "/orgs/default/egress");
    const add = page.getByRole("form", { name: "New runner host" });
    await add.getByRole("textbox", { name: "Host name" }).fill("ci-1");
    await add.getByRole("textbox", { name: "Scopes" }).fill("host");
    await add.getByRole("button", { name: "Add runner host" }).click();
    const token = await page.getByRole("textbox", { name: "Agent token" }).inputValue();
    expect(token).toMatch(/^slw_a_/);
    await page.getByRole("button", { name: "Copy agent token" }).waitFor();
    const hosts = await api<HostView[]>("GET", "/api/v1/orgs/default/egress/hosts");
    expect(hosts.map((h) => [h.name, h.scopes])).toEqual([["ci-1", ["host"]]]);

    await page.getByRole("button", { name: "Edit scopes of ci-1" }).click();
    await page.getByRole("textbox", { name: "Scopes of ci-1" }).fill("uid:1000, docker:ci");
    await page.getByRole("button", { name: "Save scopes" }).click();
    await waitFor(
      "scopes changed",
      async () =>
        (await api<HostView[]>("GET", "/api/v1/orgs/default/egress/hosts"))[0]!.scopes.join() === "uid:1000,docker:ci",
      30_000,
    );

    // The agent reports what monitor mode let through: the same destination from two sources.
    const at = new Date().toISOString();
    const ev = { action: "would-block", scope: "uid:1000", protocol: "tcp", port: 443, at };
    await api(
      "POST",
      "/api/v1/egress/agent/events",
      {
        events: [
          { ...ev, source: "uid:1000", dst: "203.0.113.9", hostname: "pkg.test", count: 3 },
          { ...ev, source: "uid:1001", dst: "203.0.113.10", hostname: "pkg.test", count: 2 },
          { ...ev, source: "uid:1000", dst: "198.51.100.7", hostname: null, count: 1, port: 22 },
        ],
      },
      token,
    );
    await page.reload();
    const row = page.getByRole("row").filter({ hasText: "pkg.test" });
    await row.waitFor();
    expect(await row.textContent()).toContain("would block 5");
    await checkPage(page, "egress-events");

    await row.getByRole("button", { name: "Allow pkg.test port 443" }).click();
    await row.getByText("allowed now").waitFor();
    const rule = (await policy()).rules.find((r) => r.target === "pkg.test");
    expect(rule).toMatchObject({ action: "allow", ports: "443" });
    await page.getByRole("cell", { name: "pkg.test", exact: true }).first().waitFor();
    const groups = await api<DestinationView[]>("GET", "/api/v1/orgs/default/egress/events/destinations");
    expect(groups.find((g) => g.destination === "pkg.test")).toMatchObject({ would_block: 5, allowed_by: rule!.id });
    expect(groups.find((g) => g.destination === "198.51.100.7")).toMatchObject({ would_block: 1, allowed_by: null });
    const audit = await api<{ action: string; target: string; details: { target: string } }[]>(
      "GET",
      "/api/v1/orgs/default/audit",
    );
    expect(audit.find((a) => a.action === "egress.rule.add" && a.target === rule!.id)?.details.target).toBe("pkg.test");
    expect(audit.some((a) => a.action === "egress.host.scopes")).toBe(true);
    await page.context().close();
  }, 120_000);

  test("a member reads without change controls and cannot change by hand; another organization is not found", async () => {
    const page = await signedIn("mia", "/orgs/default/egress");
    await page.getByRole("heading", { name: "Rules" }).waitFor();
    await page.getByRole("cell", { name: "*.example.com", exact: true }).waitFor();
    await page.getByRole("row").filter({ hasText: "198.51.100.7" }).getByText("not allowed").waitFor();
    expect(await page.getByRole("radio").count()).toBe(0);
    expect(await page.getByRole("button", { name: "Add rule" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /^(Edit|Remove|Allow) / }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Add runner host" }).count()).toBe(0);
    await checkPage(page, "egress-member");
    const before = await policy();
    // The same change a hidden control would send, from the member's own session.
    const status = await page.evaluate(async () => {
      const r = await fetch("/api/v1/orgs/default/egress/mode", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ mode: "off" }),
      });
      return r.status;
    });
    expect(status).toBe(403);
    expect((await policy()).mode).toBe(before.mode);

    await page.goto(`${world.server.url}/orgs/other/egress`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    await checkPage(page, "egress-not-found");
    await page.context().close();
    expect(world.foreign).toEqual([]);
  }, 120_000);
});
