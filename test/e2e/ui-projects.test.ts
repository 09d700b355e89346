/**
 * @module test/e2e/ui-projects
 * The projects pages in a real browser against the compiled binary: the organization's list
 * with its health strip (builds made through the depot-compatible RPCs), creating a project
 * (a bad name answered with the API's own message, nothing created), renaming and every setting
 * read back from the API (a bad value at its field, nothing changed), the depot CLI snippet
 * copied from the set-up page and run against this server, deleting with a confirmation, what a
 * member who is not an owner sees (and the API refusing them), and another organization's
 * project as the not-found page.
 */
import { beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Page } from "playwright-core";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { DEPOT, finished } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

type Project = { id: string; name: string; org_id: string; cache_size_gb: number; builder_cpus: number } & Record<
  string,
  unknown
>;
type Listed = Project & { recent_builds?: { id: string; status: string; created_at: string }[] };

integrationSuite("web UI: projects", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-projects-", adminPassword: PASSWORD });

  /** A JSON call to the API as `token` (the administrator by default); the status and the body. */
  async function call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    token = world.adminToken,
  ): Promise<{ status: number; body: T }> {
    const r = await world.apiJson(token, method, path, body);
    return { status: r.status, body: r.json as T };
  }
  const newProject = async (name: string, org = "default") => {
    const r = await call<Project>("POST", `/api/v1/orgs/${org}/projects`, { name });
    expect(r.status).toBe(201);
    return r.body;
  };
  const project = (id: string) => call<Project>("GET", `/api/v1/projects/${id}`);
  const listed = async () => (await call<Listed[]>("GET", "/api/v1/orgs/default/projects")).body;

  async function signedIn(username: string, path: string): Promise<Page> {
    const page = await openPage(world.browser, world.server, "/login", world.foreign);
    await signIn(page, username, PASSWORD);
    await page.goto(world.server.url + path);
    return page;
  }

  beforeAll(async () => {
    // bob: a member of the default organization who is not an owner; "other": an organization he is not in.
    expect((await call("POST", "/api/v1/users", { username: "bob", password: PASSWORD })).status).toBe(201);
    expect((await call("POST", "/api/v1/orgs/default/members", { user: "bob", role: "user" })).status).toBe(201);
    expect((await call("POST", "/api/v1/orgs", { slug: "other", name: "Other" })).status).toBe(201);
  });

  test("an owner creates a project; a bad name is answered with the API's message and creates nothing", async () => {
    const page = await signedIn("admin", "/orgs/default/projects");
    await page.getByRole("button", { name: "New project" }).click();
    const name = page.getByRole("textbox", { name: "Name" });
    await name.fill("no spaces allowed");
    await page.getByRole("button", { name: "Create project" }).click();
    const message = page.locator("#f-name-note.field-error");
    await message.waitFor();
    // Exactly what the API says about that name.
    const refused = await call<{ errors: { pointer: string; detail: string }[] }>(
      "POST",
      "/api/v1/orgs/default/projects",
      { name: "no spaces allowed" },
    );
    expect(refused.status).toBe(400);
    expect(await message.textContent()).toBe(refused.body.errors.find((e) => e.pointer === "/name")!.detail);
    expect(await name.getAttribute("aria-invalid")).toBe("true");
    expect((await listed()).map((p) => p.name)).not.toContain("no spaces allowed");
    await checkPage(page, "projects-new");

    await name.fill("ui-web");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.waitForURL(/\/projects\/prj_[a-z2-7]+$/);
    const made = (await listed()).find((p) => p.name === "ui-web");
    expect(made).toBeDefined();
    expect(new URL(page.url()).pathname).toBe(`/projects/${made!.id}`);
    await page.context().close();
  }, 60_000);

  test("the health strip shows the last builds, made and finished through the depot-compatible RPCs", async () => {
    const p = await newProject("ui-health");
    const rpc = async (token: string, method: string, body: unknown) => {
      const r = await call<Record<string, string>>("POST", `/depot.cli.v1.BuildService/${method}`, body, token);
      expect(r.status).toBe(200);
      return r.body;
    };
    const outcomes = [{ success: {} }, { error: { error: "exit code 2" } }, null];
    for (const result of outcomes) {
      const b = await rpc(world.adminToken, "CreateBuild", { projectId: p.id });
      if (result) await rpc(b.buildToken!, "FinishBuild", { buildId: b.buildId, ...result });
    }
    const recent = (await listed()).find((x) => x.id === p.id)!.recent_builds!;
    expect(recent.map((b) => b.status)).toEqual(["created", "failed", "finished"]); // newest first

    const page = await signedIn("admin", "/orgs/default/projects");
    const row = page.getByRole("row").filter({ has: page.getByRole("link", { name: "ui-health", exact: true }) });
    await row.waitFor();
    // Oldest on the left, each mark named by its status.
    const marks = row.locator(".strip [role=img]");
    expect(await marks.evaluateAll((els) => els.map((e) => e.getAttribute("aria-label")))).toEqual([
      "finished",
      "failed",
      "created",
    ]);
    expect(await row.getByRole("img", { name: "failed" }).count()).toBe(1);
    expect(await row.locator("time").count()).toBe(1); // when it last built
    await checkPage(page, "projects-list");
    await page.context().close();
  }, 60_000);

  test("settings: rename and change every setting, read back from the API; a bad value stays at its field", async () => {
    const p = await newProject("ui-settings");
    const registry =
      (await call<{ retention_days: number }>("GET", `/api/v1/projects/${p.id}/registry`)).status === 200;
    const page = await signedIn("admin", `/projects/${p.id}/settings`);
    await page.getByRole("button", { name: "Save settings" }).waitFor();
    await checkPage(page, "project-settings");
    await page.getByRole("textbox", { name: "Name" }).fill("ui-settings-renamed");
    const numbers: [string, string, number][] = [
      ["Cache size (GB per platform)", "cache_size_gb", 20],
      ["Cache retention (days)", "cache_keep_days", 30],
      ["Builder CPUs", "builder_cpus", 4],
      ["Builder memory (MB)", "builder_memory_mb", 2048],
      ["Idle timeout (seconds before an idle builder stops)", "builder_idle_timeout_seconds", 600],
      ["Build timeout (seconds)", "build_timeout_seconds", 3600],
    ];
    for (const [label, , value] of numbers) await page.getByLabel(label, { exact: true }).fill(String(value));
    if (registry) await page.getByLabel("Registry retention (days)", { exact: true }).fill("9");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await page.getByRole("heading", { name: "ui-settings-renamed — Settings" }).waitFor();
    const saved = (await project(p.id)).body;
    expect(saved.name).toBe("ui-settings-renamed");
    for (const [, field, value] of numbers) expect(`${field}=${saved[field]}`).toBe(`${field}=${value}`);
    if (registry)
      expect(
        (await call<{ retention_days: number }>("GET", `/api/v1/projects/${p.id}/registry`)).body.retention_days,
      ).toBe(9);

    // Cache size 0: the API's message at that field, and nothing changed.
    await page.getByLabel("Cache size (GB per platform)", { exact: true }).fill("0");
    await page.getByLabel("Builder CPUs", { exact: true }).fill("8");
    await page.getByRole("button", { name: "Save settings" }).click();
    const note = page.locator("#f-cache_size_gb-note.field-error");
    await note.waitFor();
    const refused = await call<{ errors: { pointer: string; detail: string }[] }>("PATCH", `/api/v1/projects/${p.id}`, {
      cache_size_gb: 0,
    });
    expect(refused.status).toBe(400);
    expect(await note.textContent()).toBe(refused.body.errors.find((e) => e.pointer === "/cache_size_gb")!.detail);
    expect(await page.getByLabel("Cache size (GB per platform)", { exact: true }).getAttribute("aria-invalid")).toBe(
      "true",
    );
    const after = (await project(p.id)).body;
    expect([after.cache_size_gb, after.builder_cpus]).toEqual([20, 4]);
    await checkPage(page, "project-settings-invalid");

    // A registry retention the API refuses: its message at that field, the retention unchanged.
    if (registry) {
      await page.getByLabel("Cache size (GB per platform)", { exact: true }).fill("20");
      await page.getByLabel("Builder CPUs", { exact: true }).fill("4");
      await page.getByLabel("Registry retention (days)", { exact: true }).fill("-1");
      await page.getByRole("button", { name: "Save settings" }).click();
      const retention = page.locator("#f-retention_days-note.field-error");
      await retention.waitFor();
      const no = await call<{ errors: { pointer: string; detail: string }[] }>(
        "PUT",
        `/api/v1/projects/${p.id}/registry`,
        { retention_days: -1 },
      );
      expect(no.status).toBe(400);
      expect(await retention.textContent()).toBe(no.body.errors.find((e) => e.pointer === "/retention_days")!.detail);
      expect(
        (await call<{ retention_days: number }>("GET", `/api/v1/projects/${p.id}/registry`)).body.retention_days,
      ).toBe(9);
    }
    await page.context().close();
  }, 60_000);

  test("the depot CLI snippet copied from the set-up page works against this server", async () => {
    const p = await newProject("ui-setup");
    const token = await call<{ token: string }>("POST", "/api/v1/tokens", {
      kind: "project",
      name: "ci",
      project: p.id,
    });
    expect(token.status).toBe(201);
    const page = await signedIn("admin", `/projects/${p.id}/setup`);
    await page.getByRole("button", { name: "Copy depot CLI snippet" }).click();
    await page.getByRole("button", { name: "Copied" }).waitFor();
    const snippet = (await page.evaluate("navigator.clipboard.readText()")) as string;
    expect(snippet).toContain(`DEPOT_API_URL=${world.server.url} `);
    expect(snippet).toContain(`--project ${p.id} `);
    for (const copy of ["Copy GitHub Actions workflow", "Copy slipway build snippet"]) {
      await page.getByRole("button", { name: copy }).click();
      const text = (await page.evaluate("navigator.clipboard.readText()")) as string;
      expect(text).toContain(p.id);
      expect(text).toContain(world.server.url);
    }
    await checkPage(page, "project-setup");
    await page.context().close();

    // Run as a person would: ca.pem beside it, their project token pasted in. The build line
    // needs a builder; `depot projects list` proves the address, the CA and the token.
    const dir = mkdtempSync(join(world.work, "snippet-"));
    copyFileSync(join(world.server.dataDir, "ca.pem"), join(dir, "ca.pem"));
    const script = snippet
      .replace("slw_p_…", token.body.token)
      .split("\n")
      .filter((l) => !l.startsWith("depot build "))
      .join("\n");
    writeFileSync(join(dir, "snippet.sh"), `set -e\n${script}`);
    const proc = Bun.spawn(["bash", "snippet.sh"], {
      cwd: dir,
      env: { PATH: `${dirname(DEPOT)}:${process.env.PATH ?? ""}`, HOME: dir },
      stdout: "pipe",
      stderr: "pipe",
    });
    const run = await finished(proc);
    expect(run.log).toContain(p.id);
    expect(run.log).toContain("ui-setup");
    expect(run.code).toBe(0);
  }, 60_000);

  test("delete asks first, names the project, then it is gone", async () => {
    const p = await newProject("ui-delete");
    const page = await signedIn("admin", `/projects/${p.id}/settings`);
    await page.getByRole("button", { name: "Delete project" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain("ui-delete");
    await checkPage(page, "project-delete-confirm");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await project(p.id)).status).toBe(200); // cancelled: still there
    await page.getByRole("button", { name: "Delete project" }).click();
    await dialog.getByRole("button", { name: "Yes, delete project" }).click();
    await page.waitForURL(/\/orgs\/default\/projects$/);
    expect((await project(p.id)).status).toBe(404);
    await page.context().close();
  }, 60_000);

  test("a member who is not an owner sees values but no controls, and the API refuses them", async () => {
    const p = await newProject("ui-members");
    const page = await signedIn("bob", "/orgs/default/projects");
    await page.getByRole("link", { name: "ui-members", exact: true }).waitFor();
    expect(await page.getByRole("button", { name: "New project" }).count()).toBe(0);
    await checkPage(page, "projects-list-member");

    await page.goto(`${world.server.url}/projects/${p.id}/settings`);
    await page.getByText("Builder CPUs").waitFor();
    expect(await page.locator("dd").allTextContents()).toContain(String(p.builder_cpus));
    for (const name of ["Save settings", "Delete project"])
      expect(await page.getByRole("button", { name }).count()).toBe(0);
    expect(await page.getByRole("textbox").count()).toBe(0);
    await checkPage(page, "project-settings-member");

    // By hand, with bob's session (from this server's origin, so only the policy can refuse it).
    const patched = await page.request.patch(`${world.server.url}/api/v1/projects/${p.id}`, {
      headers: { origin: world.server.url, "content-type": "application/json" },
      data: { name: "taken-over" },
    });
    expect(patched.status()).toBe(403);
    const gone = await page.request.delete(`${world.server.url}/api/v1/projects/${p.id}`, {
      headers: { origin: world.server.url },
    });
    expect(gone.status()).toBe(403);
    expect((await project(p.id)).body.name).toBe("ui-members");

    // The set-up page is for every member.
    await page.goto(`${world.server.url}/projects/${p.id}/setup`);
    await page.getByRole("button", { name: "Copy depot CLI snippet" }).waitFor();
    await page.context().close();
  }, 60_000);

  test("another organization's project and projects list are the not-found page", async () => {
    const theirs = await newProject("theirs", "other");
    const page = await signedIn("bob", `/projects/${theirs.id}/settings`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    expect(await page.getByText("theirs").count()).toBe(0);
    await checkPage(page, "project-settings-foreign");
    for (const path of [`/projects/${theirs.id}/setup`, "/orgs/other/projects"]) {
      await page.goto(world.server.url + path);
      await page.getByRole("heading", { name: "Not found" }).waitFor();
      expect(await page.getByRole("button", { name: "New project" }).count()).toBe(0);
    }
    await page.context().close();
  }, 60_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
