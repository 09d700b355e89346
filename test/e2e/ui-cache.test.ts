/**
 * @module test/e2e/ui-cache
 * The project's cache page in a real browser against the compiled binary and a real build by
 * the unchanged depot CLI (`--save`, so the image also lands in the appliance's registry): the
 * page shows the cache's usage per platform, the builder and the saved image with its tags,
 * build and age; "Reset cache", confirmed in its dialog, stops the builder and erases its volume
 * (checked through the API). A member sees no "Reset cache"; another organization's project is
 * the not-found page.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { BuilderView, ProjectCacheView } from "../../src/builders/models.ts";
import type { RegistryUsageView } from "../../src/registry/models.ts";
import { which } from "../../src/host/run.ts";
import { browserMissing, checkPage, uiWorld } from "../support/browser.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { builderImageMissing, writeBusyboxContext } from "../support/builder-image.ts";
import { DEPOT, depotEnv, finished } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

const missing =
  browserMissing ??
  (!existsSync(DEPOT)
    ? `the depot CLI is not installed (${DEPOT})`
    : !which("docker-registry")
      ? "docker-registry is not installed (apt-get install docker-registry)"
      : await builderImageMissing("trixie"));

integrationSuite("web UI: a project's cache, builders and saved images", missing, () => {
  const world = uiWorld({
    tmpPrefix: "slipway-ui-cache-",
    adminPassword: PASSWORD,
    builderImage: { suite: "trixie" },
    serveArgs: ["--set", "builders.dockerd_containerd_store=true"],
    // Builders push saved images to serve's registry on their network's gateway.
    serveOptions: { publicHost: "localhost", listenHost: "0.0.0.0" },
    setUpTimeout: 20 * 60_000,
  });
  const { signedIn } = world;
  let project = "";
  let otherProject = "";
  let buildId = "";

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await world.server.get(path, {
      method,
      headers: { authorization: `Bearer ${world.adminToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };

  beforeAll(async () => {
    await api("POST", "/api/v1/users", { username: "mia", password: PASSWORD });
    await api("POST", "/api/v1/orgs/default/members", { user: "mia", role: "user" });
    await api("POST", "/api/v1/orgs", { slug: "other", name: "Other" });
    project = (await api<{ id: string }>("POST", "/api/v1/orgs/default/projects", { name: "web" })).id;
    otherProject = (await api<{ id: string }>("POST", "/api/v1/orgs/other/projects", { name: "elsewhere" })).id;
    const token = (
      await api<{ token: string }>("POST", "/api/v1/tokens", { kind: "project", name: "ci", project: project })
    ).token;

    // One real build, its image saved in the appliance's registry with an extra tag.
    const ctx = join(world.work, "ctx");
    writeBusyboxContext(ctx, "RUN echo cached > /proof.txt");
    mkdirSync(join(world.work, "home"), { recursive: true });
    const built = await finished(
      Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", "--save", "--save-tag", "release", ctx], {
        stdout: "pipe",
        stderr: "pipe",
        env: depotEnv(world.server, join(world.work, "home"), token, { DOCKER_API_VERSION: "1.41" }),
      }),
    );
    expect(built.code, built.log).toBe(0);
    buildId = (await api<{ builds: { id: string }[] }>("GET", `/api/v1/projects/${project}/builds?limit=1`)).builds[0]!
      .id;
  }, 20 * 60_000);

  afterAll(async () => {
    await removeBuildersOf([project, otherProject]);
  });

  test(
    "usage, the builder and the saved image; Reset cache, confirmed, erases it",
    async () => {
      const cache = await api<ProjectCacheView>("GET", `/api/v1/projects/${project}/cache`);
      expect(cache.platforms).toHaveLength(1);
      const used = cache.platforms[0]!.used_bytes;
      expect(used).toBeGreaterThan(0);
      const platform = cache.platforms[0]!.platform;
      console.log(`cache after one build: ${JSON.stringify(cache.platforms[0])}`);

      const page = await signedIn("admin", `/projects/${project}/cache`);
      await page.getByRole("heading", { name: "Usage" }).waitFor();
      const usageRow = page.getByRole("table", { name: "Cache usage per platform" }).getByRole("row").nth(1);
      expect(await usageRow.textContent()).toContain(platform);
      await page.getByRole("img", { name: new RegExp(`^${platform}: `) }).waitFor();
      const builderRow = page.getByRole("table", { name: "The project's builders" }).getByRole("row").nth(1);
      const builder = (await api<BuilderView[]>("GET", `/api/v1/projects/${project}/builders`))[0]!;
      expect(await builderRow.textContent()).toContain(builder.state);
      expect(await builderRow.textContent()).toContain(builder.image ?? "");
      const imageRow = page.getByRole("table", { name: "Saved images" }).getByRole("row").nth(1);
      expect(await imageRow.textContent()).toContain("release");
      expect(await imageRow.textContent()).toContain(buildId);
      expect(await imageRow.getByRole("time").textContent()).toMatch(/just now|min ago/);
      expect(await imageRow.getByRole("link", { name: buildId }).getAttribute("href")).toBe(`/builds/${buildId}`);
      const registry = await api<RegistryUsageView>("GET", `/api/v1/projects/${project}/registry`);
      expect(await page.getByText(registry.repository, { exact: true }).count()).toBe(1);
      await checkPage(page, "cache");

      // Cancel first: nothing happens.
      await page.getByRole("button", { name: "Reset cache" }).click();
      const dialog = page.getByRole("dialog");
      expect(await dialog.textContent()).toContain("cache volume is erased");
      await dialog.getByRole("button", { name: "Cancel" }).click();
      expect((await api<ProjectCacheView>("GET", `/api/v1/projects/${project}/cache`)).platforms).toHaveLength(1);

      await page.getByRole("button", { name: "Reset cache" }).click();
      await dialog.getByRole("button", { name: "Erase the cache" }).click();
      await page.getByText(`Cache reset: ${platform} erased.`).waitFor();
      const after = await api<ProjectCacheView>("GET", `/api/v1/projects/${project}/cache`);
      const buildersAfter = await api<BuilderView[]>("GET", `/api/v1/projects/${project}/builders`);
      console.log(`after reset: cache ${JSON.stringify(after.platforms)}, builders ${JSON.stringify(buildersAfter)}`);
      expect(after.platforms.map((p) => p.used_bytes)).toEqual([0]);
      expect(buildersAfter.every((b) => b.state === "absent")).toBe(true);
      // The audit log names the reset.
      const audit = await api<{ action: string }[]>("GET", "/api/v1/orgs/default/audit");
      expect(audit.some((a) => a.action.includes("cache"))).toBe(true);
      await checkPage(page, "cache-reset");
      await page.context().close();
    },
    10 * 60_000,
  );

  test("a member sees no Reset cache; another organization's project is not found", async () => {
    const page = await signedIn("mia", `/projects/${project}/cache`);
    await page.getByRole("heading", { name: "Saved images" }).waitFor();
    expect(await page.getByRole("button", { name: "Reset cache" }).count()).toBe(0);
    await checkPage(page, "cache-member");
    const status = await page.evaluate(
      async (id) => (await fetch(`/api/v1/projects/${id}/cache/reset`, { method: "POST" })).status,
      project,
    );
    expect(status).toBe(403);
    await page.goto(`${world.server.url}/projects/${otherProject}/cache`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    await page.context().close();
    expect(world.foreign).toEqual([]);
  }, 120_000);
});
