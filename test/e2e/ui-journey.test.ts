/**
 * @module test/e2e/ui-journey.test
 * Issue 16's acceptance journey, as a person does it in a real browser against the compiled
 * binary and real builders: sign in as an owner; create a project; create a project token and
 * copy it; build with the unchanged depot CLI and that token; watch the build appear and run
 * live in the list; open it (steps, timeline, log); reset the cache; add an egress rule and find
 * it in the audit log; sign out. Then the same appliance through a user's eyes (not an owner):
 * projects and builds visible, no owner action offered, an owner action sent by hand refused,
 * another organization's pages answer the not-found page, and the session cookie never readable
 * by script.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { findBuildkitClient } from "../../src/cli/client/build-session.ts";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { builderImageMissing, writeBusyboxContext } from "../support/builder-image.ts";
import { DEPOT, depotEnv, finished, waitFor } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const OWNER_PASSWORD = "the owner's long passphrase";
const USER_PASSWORD = "the user's long passphrase";

const missing =
  browserMissing ??
  (!existsSync(DEPOT)
    ? `the depot CLI is not installed (${DEPOT})`
    : findBuildkitClient(process.env)?.kind !== "buildx"
      ? "docker-buildx is not installed (.ci/run installs it)"
      : await builderImageMissing());

integrationSuite("the web UI journey: from sign-in to a live build, as an owner and as a user", missing, () => {
  const world = uiWorld({
    tmpPrefix: "slipway-ui-journey-",
    adminPassword: "the administrator's passphrase",
    builderImage: {},
    serveOptions: { publicHost: "localhost" },
    setUpTimeout: 20 * 60_000,
  });
  const { apiJson: api } = world;
  let projectId = "";
  let buildId = "";

  beforeAll(async () => {
    // The owner: a person who owns the organization "acme" (not the administrator).
    expect(
      (await api(world.adminToken, "POST", "/api/v1/users", { username: "olivia", password: OWNER_PASSWORD })).status,
    ).toBe(201);
    expect(
      (await api(world.adminToken, "POST", "/api/v1/orgs", { slug: "acme", name: "Acme", owner: "olivia" })).status,
    ).toBe(201);
    // A member who is not an owner, and another organization neither belongs to.
    expect(
      (await api(world.adminToken, "POST", "/api/v1/users", { username: "uma", password: USER_PASSWORD })).status,
    ).toBe(201);
    expect(
      (await api(world.adminToken, "POST", "/api/v1/orgs/acme/members", { user: "uma", role: "user" })).status,
    ).toBe(201);
  });

  const projectTab = (page: Page, name: string) =>
    page.getByRole("navigation", { name: "Project" }).getByRole("link", { name, exact: true });
  const confirmIn = (page: Page, name: RegExp) => page.getByRole("dialog").getByRole("button", { name });

  test("an owner: project, token, a live build, its page, cache reset, an egress rule in the audit log, sign out", async () => {
    const page = await openPage(world.browser, world.server, "/", world.foreign);
    await signIn(page, "olivia", OWNER_PASSWORD);
    await page.waitForURL(/\/orgs\/acme\/projects$/);

    // Create a project in the UI.
    await page.getByRole("button", { name: "New project" }).click();
    await page.getByRole("textbox", { name: "Name" }).fill("journey");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.waitForURL(/\/projects\/prj_[a-z2-7]+$/);
    projectId = new URL(page.url()).pathname.split("/")[2]!;
    const listed = await api(world.adminToken, "GET", "/api/v1/orgs/acme/projects");
    expect(listed.json.map((p: { id: string; name: string }) => [p.id, p.name])).toEqual([[projectId, "journey"]]);

    // A project token, created and copied.
    await projectTab(page, "Tokens").click();
    await page.getByRole("textbox", { name: "Name" }).fill("ci");
    await page.getByRole("button", { name: "Create token" }).click();
    await page.getByRole("button", { name: "Copy token" }).click();
    const token = (await page.evaluate("navigator.clipboard.readText()")) as string;
    expect(token.length).toBeGreaterThan(20);
    expect(await page.getByRole("textbox", { name: "Token" }).inputValue()).toBe(token);

    // The builds tab, open while the depot CLI builds with that token.
    await projectTab(page, "Builds").click();
    await page.getByText(/no builds yet/i).waitFor();
    const ctx = join(world.work, "ctx");
    writeBusyboxContext(
      ctx,
      'RUN for i in 1 2 3 4 5 6; do echo "journey line $i"; sleep 1; done\nRUN echo done > /done.txt',
    );
    const build = Bun.spawn([DEPOT, "build", "--project", projectId, "--progress", "plain", ctx], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv(world.server, join(world.work, "home"), token),
    });
    // The build appears in the list and is seen running, then finished, with no reload.
    const row = page.getByRole("row").filter({ hasText: /bld_/ }).first();
    await row.getByText("running").waitFor({ timeout: 60_000 });
    const navigations: string[] = [];
    page.on("framenavigated", (f) => navigations.push(f.url()));
    const done = await finished(build);
    expect(done.code, done.log).toBe(0);
    await row.getByText("finished").waitFor({ timeout: 30_000 });
    expect(navigations).toEqual([]);
    buildId = /bld_[a-z2-7]{20}/.exec((await row.textContent()) ?? "")![0];
    await checkPage(page, "journey-project-builds");

    // Its page: steps, the timeline, the log.
    await row.getByRole("link", { name: buildId }).click();
    await page.waitForURL(new RegExp(`/builds/${buildId}$`));
    await page.getByRole("status", { name: "Build status" }).getByText("finished").waitFor();
    const steps = await api(world.adminToken, "GET", `/api/v1/builds/${buildId}/steps`);
    const runStep = steps.json.find((s: { name: string }) => s.name.includes("journey line"));
    expect(runStep).toBeDefined();
    await page.getByRole("list", { name: "Steps" }).getByText(runStep.name).first().waitFor();
    await page.getByRole("log", { name: "Build log" }).getByText("journey line 6").first().waitFor();
    await checkPage(page, "journey-build");

    // Reset the cache, confirmed in the dialog.
    await page.getByRole("link", { name: "journey" }).first().click();
    await projectTab(page, "Cache").click();
    await page.getByRole("button", { name: "Reset cache" }).click();
    await confirmIn(page, /erase/i).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    const audited = async (action: string) => {
      const body = (await api(world.adminToken, "GET", "/api/v1/orgs/acme/audit")).json;
      const entries = (Array.isArray(body) ? body : (body.entries ?? body.items ?? [])) as { action: string }[];
      return entries.some((e) => e.action === action);
    };
    await waitFor("the cache reset in the audit log", () => audited("cache.reset"), 10_000);

    // An egress rule, then the same change in the organization's audit log.
    await page.getByRole("link", { name: "Egress", exact: true }).click();
    await page.getByRole("button", { name: "Add rule" }).waitFor();
    await page
      .getByRole("form", { name: "New rule" })
      .getByRole("textbox", { name: "Target" })
      .fill("registry.example.internal");
    await page.getByRole("button", { name: "Add rule" }).click();
    await waitFor(
      "the rule in the policy",
      async () =>
        JSON.stringify((await api(world.adminToken, "GET", "/api/v1/orgs/acme/egress")).json).includes(
          "registry.example.internal",
        ),
      10_000,
    );
    await page.getByRole("link", { name: "Organization", exact: true }).click();
    await page.getByRole("navigation", { name: "Organization" }).getByRole("link", { name: "Audit log" }).click();
    await page
      .getByText(/egress/)
      .first()
      .waitFor();
    await page.getByText("registry.example.internal").first().waitFor();
    await checkPage(page, "journey-audit");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect((await page.request.get(`${world.server.url}/api/v1/me`)).status()).toBe(401);
    await page.context().close();
  }, 240_000);

  test("a user who is not an owner: sees projects and builds, no owner action; by hand refused; other tenants not found", async () => {
    expect(projectId).not.toBe("");
    const page = await openPage(world.browser, world.server, `/projects/${projectId}`, world.foreign);
    await signIn(page, "uma", USER_PASSWORD);
    // The project's builds are there to see.
    await page.getByRole("link", { name: buildId }).waitFor();
    expect(await page.evaluate("document.cookie")).toBe("");

    // No owner actions anywhere they would be.
    await page.goto(`${world.server.url}/orgs/acme/projects`);
    await page.getByRole("link", { name: "journey" }).waitFor();
    expect(await page.getByRole("button", { name: "New project" }).count()).toBe(0);
    for (const [tab, owner] of [
      ["settings", "Delete project"],
      ["tokens", "Create token"],
      ["cache", "Reset cache"],
    ] as const) {
      await page.goto(`${world.server.url}/projects/${projectId}/${tab}`);
      await page.getByRole("heading", { level: 1 }).waitFor();
      await page.waitForLoadState("networkidle");
      expect(`${tab}: ${await page.getByRole("button", { name: owner }).count()}`).toBe(`${tab}: 0`);
    }
    await page.goto(`${world.server.url}/orgs/acme/egress`);
    await page.getByRole("heading", { level: 1 }).waitFor();
    await page.waitForLoadState("networkidle");
    expect(await page.getByRole("button", { name: "Add rule" }).count()).toBe(0);

    // An owner action sent by hand with this session: refused, nothing changed.
    const del = await page.request.delete(`${world.server.url}/api/v1/projects/${projectId}`);
    expect([403, 404]).toContain(del.status());
    const reset = await page.request.post(`${world.server.url}/api/v1/projects/${projectId}/cache/reset`, { data: {} });
    expect([403, 404]).toContain(reset.status());
    expect((await api(world.adminToken, "GET", `/api/v1/projects/${projectId}`)).status).toBe(200);

    // Another organization's pages: the UI's not-found page, like a missing one.
    const other = await api(world.adminToken, "POST", "/api/v1/orgs/default/projects", { name: "not-yours" });
    for (const path of [
      `/projects/${other.json.id}`,
      `/projects/${other.json.id}/settings`,
      "/orgs/default/projects",
      "/orgs/default/members",
      `/projects/prj_${"a".repeat(20)}`,
    ]) {
      await page.goto(world.server.url + path);
      await page.getByRole("heading", { name: "Not found" }).waitFor();
    }
    await checkPage(page, "journey-not-found");
    await page.context().close();
  }, 120_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
