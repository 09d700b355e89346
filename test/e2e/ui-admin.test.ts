/**
 * @module test/e2e/ui-admin
 * The administration pages in a real browser against the compiled binary, each checked against
 * what the API says: the status (every /readyz check), users (create one and sign in as them,
 * make administrator, reset a token: the new one works and the old is revoked, the last
 * administrator kept), organizations and their limits, builder images and builders, and the
 * certificate authorities (fingerprints as in ca.pem). A real build with the unchanged depot CLI
 * starts a builder, so the builders page has one to show. A non-administrator gets no
 * "Administration" link, the not-allowed page, and 403 from the admin API sent by hand.
 */
import { afterAll, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { builderImageMissing, writeBusyboxContext } from "../support/builder-image.ts";
import { DEPOT, depotEnv, finished } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";
const ALICE_PASSWORD = "alice's own long passphrase";

const missing =
  browserMissing ??
  (existsSync(DEPOT) ? null : `the depot CLI is not installed (${DEPOT})`) ??
  (await builderImageMissing());

integrationSuite("web UI: administration", missing, () => {
  const world = uiWorld({
    tmpPrefix: "slipway-ui-admin-",
    adminPassword: PASSWORD,
    builderImage: {},
    serveOptions: { publicHost: "localhost" }, // the name the depot CLI checks the certificate for
    setUpTimeout: 20 * 60_000,
  });
  let projectId = "";

  afterAll(async () => {
    if (projectId) await removeBuildersOf([projectId]);
  });

  /** The API as the administrator (bearer token). */
  async function asAdmin<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
    const r = await world.server.get(path, {
      method: init.method ?? "GET",
      headers: { authorization: `Bearer ${world.adminToken}`, "content-type": "application/json" },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
    expect(r.ok).toBe(true);
    return (await r.json()) as T;
  }

  const adminPage = (path: string) => world.signedIn("admin", path);

  /** The text of each row's header cell (first column) of the table named `name`. */
  const rowHeads = (page: Page, name: string) =>
    page.getByRole("table", { name, exact: true }).locator("tbody th").allTextContents();

  test("status: the version and every readiness check as /readyz reports them", async () => {
    const page = await adminPage("/");
    await page.getByRole("link", { name: "Administration" }).click();
    await page.getByRole("heading", { name: "Appliance status" }).waitFor();
    const report = (await (await world.server.get("/readyz")).json()) as {
      status: string;
      version: string;
      checks: Record<string, { status: string; output?: string }[]>;
    };
    expect(await page.getByTestId("version").textContent()).toBe(report.version);
    expect(await page.getByTestId("overall").textContent()).toBe(report.status);
    const rows = await page
      .getByRole("table", { name: "Readiness checks" })
      .locator("tbody tr")
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? "")));
    expect(rows).toEqual(Object.entries(report.checks).map(([name, [c]]) => [name, c!.status, c!.output ?? ""]));
    // The volumes check warns with plain volumes (set above): a warn is shown as such.
    expect(rows.find((r) => r[0] === "volumes:encryption")?.[1]).toBe("warn");
    await checkPage(page, "admin-status");
    await page.context().close();
  }, 120_000);

  test("users: create one who signs in, a non-administrator is refused; reset token, make administrator, the last kept", async () => {
    const page = await adminPage("/admin/users");
    await page.getByRole("table", { name: "Users" }).waitFor();
    const apiUsers = async () => asAdmin<{ id: string; username: string; is_admin: boolean }[]>("/api/v1/users");
    expect(await rowHeads(page, "Users")).toEqual((await apiUsers()).map((u) => u.username));
    await checkPage(page, "admin-users");

    // Create alice with a first password, in the form.
    await page.getByRole("textbox", { name: "Username" }).fill("alice");
    await page.getByLabel("Initial password (optional)").fill(ALICE_PASSWORD);
    await page.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("status").filter({ hasText: "Created alice" }).waitFor();
    const alice = (await apiUsers()).find((u) => u.username === "alice")!;
    expect(alice.is_admin).toBe(false);
    expect(await rowHeads(page, "Users")).toEqual(["admin", "alice"]);
    // The API's message for a taken name, on the form.
    await page.getByRole("textbox", { name: "Username" }).fill("alice");
    await page.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("alert").filter({ hasText: "already exists" }).waitFor();

    // Alice signs in; no administration for her: no link, the not-allowed page, 403 by hand.
    const hers = await openPage(world.browser, world.server, "/login", world.foreign);
    await signIn(hers, "alice", ALICE_PASSWORD);
    expect(await hers.getByRole("link", { name: "Administration" }).count()).toBe(0);
    await hers.goto(`${world.server.url}/admin/users`);
    await hers.getByRole("heading", { name: "Not allowed" }).waitFor();
    await checkPage(hers, "admin-not-allowed");
    const origin = { origin: world.server.url };
    // The quotas of an organization she is not in answer like a missing one (404).
    for (const [method, path, data, status] of [
      ["GET", "/api/v1/users", undefined, 403],
      ["GET", "/api/v1/admin/builders", undefined, 403],
      ["GET", "/api/v1/admin/ca", undefined, 403],
      ["PATCH", `/api/v1/users/${alice.id}`, { is_admin: true }, 403],
      ["POST", `/api/v1/users/${alice.id}/token`, {}, 403],
      ["PUT", "/api/v1/orgs/default/quotas", { max_projects: 1 }, 404],
    ] as const) {
      const r = await hers.request.fetch(`${world.server.url}${path}`, { method, headers: origin, data });
      expect(`${method} ${path}: ${r.status()}`).toBe(`${method} ${path}: ${status}`);
    }
    expect((await apiUsers()).find((u) => u.username === "alice")!.is_admin).toBe(false);
    // Her own token (made with her session), to see what a reset does to it.
    const old = await hers.request.post(`${world.server.url}/api/v1/tokens`, {
      headers: origin,
      data: { kind: "user", name: "laptop" },
    });
    expect(old.status()).toBe(201);
    const oldToken = ((await old.json()) as { token: string }).token;

    // Reset her token: shown once; the new one works, the old one is revoked.
    await page.getByRole("button", { name: "Reset token of alice" }).click();
    await page.getByRole("dialog", { name: "Reset token" }).getByRole("button", { name: "Reset token" }).click();
    const box = page.getByRole("textbox", { name: "Token" });
    await box.waitFor();
    await page.getByRole("button", { name: "Copy token" }).waitFor();
    const newToken = await box.inputValue();
    const me = (t: string) => world.server.get("/api/v1/me", { headers: { authorization: `Bearer ${t}` } });
    const fresh = await me(newToken);
    expect(fresh.status).toBe(200);
    expect(((await fresh.json()) as { username: string }).username).toBe("alice");
    expect((await me(oldToken)).status).toBe(401);
    // Her web session stays: a token reset is not a sign-out.
    expect((await hers.request.get(`${world.server.url}/api/v1/me`)).status()).toBe(200);
    await checkPage(page, "admin-users-token");

    // The last administrator cannot be demoted: the API's message in the dialog.
    await page.getByRole("button", { name: "Remove administrator admin" }).click();
    const dialog = page.getByRole("dialog", { name: "Remove administrator" });
    await dialog.getByRole("button", { name: "Remove administrator" }).click();
    await dialog.getByRole("alert").filter({ hasText: "at least one administrator" }).waitFor();
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await apiUsers()).find((u) => u.username === "admin")!.is_admin).toBe(true);
    const demote = await world.server.get(
      `/api/v1/users/${(await apiUsers()).find((u) => u.username === "admin")!.id}`,
      {
        method: "PATCH",
        headers: { authorization: `Bearer ${world.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ is_admin: false }),
      },
    );
    expect(demote.status).toBe(409);

    // Make alice administrator: the API says so, and her next page has the link.
    await page.getByRole("button", { name: "Make alice administrator" }).click();
    await page
      .getByRole("dialog", { name: "Make administrator" })
      .getByRole("button", { name: "Make administrator" })
      .click();
    await page.getByRole("button", { name: "Remove administrator alice" }).waitFor();
    expect((await apiUsers()).find((u) => u.username === "alice")!.is_admin).toBe(true);
    await hers.goto(`${world.server.url}/admin/users`);
    await hers.getByRole("link", { name: "Administration" }).waitFor();
    await hers.getByRole("table", { name: "Users" }).waitFor();
    // Two administrators: now one of them may step down.
    await page.getByRole("button", { name: "Remove administrator alice" }).click();
    await page
      .getByRole("dialog", { name: "Remove administrator" })
      .getByRole("button", { name: "Remove administrator" })
      .click();
    await page.getByRole("button", { name: "Make alice administrator" }).waitFor();
    expect((await apiUsers()).find((u) => u.username === "alice")!.is_admin).toBe(false);
    await hers.context().close();
    await page.context().close();
  }, 180_000);

  test("organizations: every one, create one, limits and usage edited", async () => {
    const page = await adminPage("/admin/orgs");
    await page.getByRole("table", { name: "Organizations" }).waitFor();
    const apiOrgs = () => asAdmin<{ slug: string }[]>("/api/v1/orgs");
    expect(await rowHeads(page, "Organizations")).toEqual((await apiOrgs()).map((o) => o.slug));
    await checkPage(page, "admin-orgs");

    await page.getByRole("textbox", { name: "Slug" }).fill("team-x");
    await page.getByRole("textbox", { name: "Display name" }).fill("Team X");
    await page.getByRole("button", { name: "Create organization" }).click();
    await page.getByRole("link", { name: "team-x", exact: true }).waitFor();
    expect((await apiOrgs()).map((o) => o.slug)).toContain("team-x");

    await page.getByRole("link", { name: "Limits of default" }).click();
    await page.getByRole("heading", { name: "Limits of default" }).waitFor();
    type Quotas = {
      limits: Record<string, number>;
      defaults: Record<string, number>;
      overrides: Record<string, number>;
      usage: { projects: number; running_builders: number };
    };
    const before = await asAdmin<Quotas>("/api/v1/orgs/default/quotas");
    expect(await page.getByTestId("usage-projects").textContent()).toBe(
      `${before.usage.projects} of ${before.limits.max_projects}`,
    );
    await checkPage(page, "admin-org-limits");
    await page.getByRole("spinbutton", { name: "Projects" }).fill("7");
    await page.getByRole("spinbutton", { name: "Builders running at once" }).fill("3");
    await page.getByRole("button", { name: "Save limits" }).click();
    await page
      .getByTestId("usage-projects")
      .filter({ hasText: / of 7$/ })
      .waitFor();
    const after = await asAdmin<Quotas>("/api/v1/orgs/default/quotas");
    expect(after.overrides).toEqual({ max_projects: 7, max_running_builders: 3 });
    expect(after.limits.max_projects).toBe(7);
    // Out of range: the API's message beside the field, nothing changed.
    await page.getByRole("spinbutton", { name: "Projects" }).fill("-1");
    await page.getByRole("button", { name: "Save limits" }).click();
    await page.locator("#f-max_projects-note.field-error").waitFor();
    expect((await asAdmin<Quotas>("/api/v1/orgs/default/quotas")).overrides.max_projects).toBe(7);
    // Emptied: back to the default.
    await page.getByRole("spinbutton", { name: "Projects" }).fill("");
    await page.getByRole("button", { name: "Save limits" }).click();
    await page
      .getByTestId("usage-projects")
      .filter({ hasText: ` of ${before.defaults.max_projects}` })
      .waitFor();
    expect((await asAdmin<Quotas>("/api/v1/orgs/default/quotas")).overrides).toEqual({ max_running_builders: 3 });
    await page.context().close();
  }, 180_000);

  test("builders: the images per runtime, and the builder a depot build started with its image", async () => {
    // One real build: its builder is what the page must show.
    projectId = (
      await asAdmin<{ id: string }>("/api/v1/orgs/default/projects", { method: "POST", body: { name: "web" } })
    ).id;
    const token = (
      await asAdmin<{ token: string }>("/api/v1/tokens", {
        method: "POST",
        body: { kind: "project", name: "ci", project: projectId },
      })
    ).token;
    const ctx = join(world.work, "ctx");
    writeBusyboxContext(ctx, "RUN echo built > /out.txt");
    mkdirSync(join(world.work, "home"), { recursive: true });
    const build = await finished(
      Bun.spawn([DEPOT, "build", "--project", projectId, "--progress", "plain", ctx], {
        stdout: "pipe",
        stderr: "pipe",
        env: depotEnv(world.server, join(world.work, "home"), token),
      }),
    );
    expect(`${build.code}`).toBe(`0`);

    const page = await adminPage("/admin/builders");
    await page.getByRole("table", { name: "Builder images" }).waitFor();
    const api = await asAdmin<{
      runtime: string;
      images: { runtime: string; image: string; configured: boolean; present: boolean | null; id: string | null }[];
      orgs: { slug: string; oci_runtime: string | null }[];
      builders: {
        project_id: string;
        project_name: string | null;
        org_slug: string | null;
        platform: string;
        state: string;
        image: string | null;
        image_id: string | null;
      }[];
    }>("/api/v1/admin/builders");
    expect(await page.getByTestId("runtime").textContent()).toBe(api.runtime);
    const images = await page
      .getByRole("table", { name: "Builder images" })
      .locator("tbody tr")
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].slice(0, 4).map((c) => c.textContent)));
    expect(images).toEqual(
      api.images.map((i) => [
        i.runtime,
        i.image,
        i.configured ? "yes" : "no",
        i.present === null ? "engine did not answer" : i.present ? "present" : "missing",
      ]),
    );
    const configured = api.images.find((i) => i.configured)!;
    expect(configured.runtime).toBe("dockerd");
    expect(configured.present).toBe(true);
    expect(await rowHeads(page, "OCI runtime per organization")).toEqual(api.orgs.map((o) => o.slug));

    // The build's builder: its project, organization and platform, on the configured image.
    const mine = api.builders.filter((b) => b.project_id === projectId);
    expect(mine.length).toBe(1);
    expect(mine[0]).toMatchObject({ project_name: "web", org_slug: "default", image: configured.image });
    expect(mine[0]!.image_id).toBe(configured.id);
    const rows = await page
      .getByRole("table", { name: "Builders", exact: true })
      .locator("tbody tr")
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].slice(0, 5).map((c) => c.textContent ?? "")));
    expect(rows.map((r) => r.slice(0, 4))).toEqual(
      api.builders.map((b) => [b.project_name ?? b.project_id, b.org_slug ?? "—", b.platform, b.state]),
    );
    expect(rows[0]![4]).toContain(configured.image);
    expect(rows[0]![4]).toContain(configured.id!.replace(/^sha256:/, "").slice(0, 12));
    await checkPage(page, "admin-builders");
    await page.context().close();
  }, 600_000);

  test("certificate authority: roots and intermediates with fingerprints as in ca.pem, no key", async () => {
    const page = await adminPage("/admin/ca");
    await page.getByRole("table", { name: "Certificate authorities" }).waitFor();
    const res = await world.server.get("/api/v1/admin/ca", {
      headers: { authorization: `Bearer ${world.adminToken}` },
    });
    const text = await res.text();
    expect(text).not.toContain("PRIVATE");
    expect(text).not.toContain("key_sealed");
    const cas = JSON.parse(text) as {
      purpose: string;
      subject: string;
      fingerprint_sha256: string;
      days_left: number;
    }[];
    expect(cas.map((c) => c.purpose).sort()).toEqual(["build-client", "root", "server"]);
    // The root's fingerprint is that of the ca.pem clients are given.
    const caPem = readFileSync(join(world.server.dataDir, "ca.pem"), "utf8");
    expect(cas.find((c) => c.purpose === "root")!.fingerprint_sha256).toBe(new X509Certificate(caPem).fingerprint256);
    const rows = await page
      .getByRole("table", { name: "Certificate authorities" })
      .locator("tbody tr")
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent ?? "")));
    expect(rows.map((r) => [r[1], r[2], r[5]])).toEqual(
      cas.map((c) => [c.subject, c.fingerprint_sha256, String(c.days_left)]),
    );
    expect(cas.every((c) => c.days_left > 3000)).toBe(true); // fresh: years left, nothing flagged
    expect(await page.getByText("expires soon").count()).toBe(0);
    await checkPage(page, "admin-ca");
    await page.context().close();
  }, 120_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
