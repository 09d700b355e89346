/**
 * @module test/e2e/ui-builds
 * The builds lists in a real browser (Chromium, the compiled binary): an organization's builds
 * and a project's builds tab with their fields, filters kept in the address and matching the
 * API, pages walked with no repeat and no gap, the charts with their text alternative, another
 * organization's lists as the not-found page; and the list and chart API's validation.
 * Builds are made as the depot CLI makes them: CreateBuild, then ReportStatus and FinishBuild
 * with the build's own token.
 */
import { beforeAll, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

type Json = Record<string, any>;
type ListedBuild = {
  id: string;
  status: string;
  project_name: string;
  started_by_kind: string;
  started_by_name: string;
  duration_seconds: number | null;
  step_count: number;
  cached_step_count: number;
  outputs: string[];
  platforms: string[];
};

integrationSuite("web UI: builds lists and charts", browserMissing, () => {
  const world = uiWorld({
    tmpPrefix: "slipway-ui-builds-",
    adminPassword: PASSWORD,
    // Builds left running stay so for the whole suite (no health reports come from these clients).
    serveArgs: ["--set", "builds.health_timeout_seconds=3600"],
  });
  const ids = { app: "", other: "", many: "", hidden: "", pushed: "", failed: "", waiting: "", hiddenBuild: "" };

  const call = async (token: string, path: string, body?: unknown, method = body === undefined ? "GET" : "POST") => {
    const r = await world.server.get(path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: r.status, type: r.headers.get("content-type") ?? "", json: (await r.json()) as Json };
  };
  const ok = async (token: string, path: string, body?: unknown) => {
    const r = await call(token, path, body);
    if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  };
  /** A build as the depot CLI drives one: created, its steps reported, finished (or not). */
  const build = async (
    token: string,
    projectId: string,
    opts: { options?: Json[]; steps?: { cached: boolean }[]; end?: Json | null } = {},
  ) => {
    const created = await ok(token, "/depot.cli.v1.BuildService/CreateBuild", {
      projectId,
      options: opts.options ?? [],
    });
    const at = new Date().toISOString();
    if (opts.steps?.length)
      await ok(created.buildToken, "/depot.cli.v1.BuildService/ReportStatus", {
        buildId: created.buildId,
        statuses: [
          {
            vertexes: opts.steps.map((s, i) => ({
              digest: `sha256:${String(i).padStart(4, "0")}`,
              name: `[${i + 1}/${opts.steps!.length}] RUN step ${i}`,
              cached: s.cached,
              started: at,
              completed: at,
            })),
          },
        ],
      });
    if (opts.end !== null)
      await ok(created.buildToken, "/depot.cli.v1.BuildService/FinishBuild", {
        buildId: created.buildId,
        ...(opts.end ?? { success: {} }),
      });
    return created.buildId as string;
  };
  const list = async (path: string) =>
    (await ok(world.adminToken, path)) as { builds: ListedBuild[]; next_cursor: string | null };
  const open = async (path: string, user = "admin") => {
    const page = await openPage(world.browser, world.server, "/login", world.foreign);
    await signIn(page, user, PASSWORD);
    await page.goto(`${world.server.url}${path}`);
    return page;
  };
  const rowIds = (page: Page) =>
    page.locator("table.builds tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-build")));
  /** Waits until the table shows exactly `expected` (in order). */
  const showing = async (page: Page, expected: string[]) => {
    await page.waitForFunction(
      (want: string[]) => {
        // Runs in the page (this file is not compiled against the DOM's types).
        const doc = (globalThis as any).document;
        const shown = [...doc.querySelectorAll("table.builds tbody tr")].map((r: any) => r.getAttribute("data-build"));
        return (
          JSON.stringify(shown) === JSON.stringify(want) || (want.length === 0 && doc.querySelector("p.empty") !== null)
        );
      },
      expected,
      { timeout: 15_000 },
    );
  };

  beforeAll(async () => {
    ids.app = (await ok(world.adminToken, "/api/v1/orgs/default/projects", { name: "app" })).id;
    ids.other = (await ok(world.adminToken, "/api/v1/orgs/default/projects", { name: "other-app" })).id;
    ids.many = (await ok(world.adminToken, "/api/v1/orgs/default/projects", { name: "many" })).id;
    await ok(world.adminToken, "/api/v1/orgs", { slug: "elsewhere", name: "Elsewhere" });
    ids.hidden = (await ok(world.adminToken, "/api/v1/orgs/elsewhere/projects", { name: "hidden" })).id;
    await ok(world.adminToken, "/api/v1/users", { username: "dev", password: PASSWORD });
    await ok(world.adminToken, "/api/v1/orgs/default/members", { user: "dev", role: "user" });
    const ciBot = (await ok(world.adminToken, "/api/v1/tokens", { kind: "project", name: "ci-bot", project: ids.app }))
      .token;

    // The 60 first: the app's builds are then the newest, on the organization list's first page.
    for (let i = 0; i < 60; i++) await build(world.adminToken, ids.many, { end: i % 10 === 0 ? null : undefined });
    ids.pushed = await build(world.adminToken, ids.app, {
      options: [{ tags: ["registry.example/app:1"], push: true, load: true }],
      steps: [{ cached: true }, { cached: true }, { cached: true }, { cached: false }],
    });
    ids.failed = await build(ciBot, ids.app, {
      steps: [{ cached: false }],
      end: { error: { error: "RUN make: exit 2" } },
    });
    ids.waiting = await build(world.adminToken, ids.other, { end: null });
    ids.hiddenBuild = await build(world.adminToken, ids.hidden);
  }, 180_000);

  test("the API: each build says who started it, its project, duration, cached steps and outputs", async () => {
    const { builds } = await list(`/api/v1/projects/${ids.app}/builds`);
    const pushed = builds.find((b) => b.id === ids.pushed)!;
    expect(pushed).toMatchObject({
      status: "finished",
      project_name: "app",
      started_by_kind: "user",
      started_by_name: "admin",
      step_count: 4,
      cached_step_count: 3,
      outputs: ["pushed", "loaded"],
    });
    expect(pushed.duration_seconds).toBeGreaterThanOrEqual(0);
    const failed = builds.find((b) => b.id === ids.failed)!;
    expect(failed).toMatchObject({
      status: "failed",
      started_by_kind: "token",
      started_by_name: "ci-bot",
      outputs: [],
    });
    // The organization's list: every project, newest first; not another organization's.
    const org = await list("/api/v1/orgs/default/builds?limit=200");
    expect(org.builds.length).toBe(63);
    expect(org.builds.slice(0, 3).map((b) => b.id)).toEqual([ids.waiting, ids.failed, ids.pushed]);
    expect(org.builds.some((b) => b.id === ids.hiddenBuild)).toBe(false);
  });

  test("the API: filters narrow the lists, bad values are 400 problems", async () => {
    const ids_ = async (q: string) =>
      (await list(`/api/v1/orgs/default/builds?limit=200&${q}`)).builds.map((b) => b.id);
    expect(await ids_("status=failed")).toEqual([ids.failed]);
    expect(await ids_("started_by=token")).toEqual([ids.failed]);
    expect((await ids_("started_by=user")).length).toBe(62);
    expect(await ids_("started_by=ci")).toEqual([]);
    expect(await ids_(`project=${ids.other}`)).toEqual([ids.waiting]);
    expect(await ids_(`project=${ids.app}&status=finished,failed`)).toEqual([ids.failed, ids.pushed]);
    expect(await ids_(`until=2000-01-01`)).toEqual([]);
    expect((await ids_(`since=2000-01-01T00:00:00Z`)).length).toBe(63);
    // A project outside the organization narrows to nothing (it never widens the list).
    expect(await ids_(`project=${ids.hidden}`)).toEqual([]);
    for (const bad of [
      `/api/v1/orgs/default/builds?status=done`,
      `/api/v1/orgs/default/builds?started_by=robot`,
      `/api/v1/orgs/default/builds?since=yesterday`,
      `/api/v1/orgs/default/builds?since=2026-02-01&until=2026-01-01`,
      `/api/v1/orgs/default/builds?project=app`,
      `/api/v1/orgs/default/builds?limit=0`,
      `/api/v1/orgs/default/builds?cursor=nope`,
      `/api/v1/orgs/default/builds?colour=red`,
      `/api/v1/projects/${ids.app}/builds?status=finished;drop`,
      `/api/v1/projects/${ids.app}/builds/stats?days=0`,
      `/api/v1/projects/${ids.app}/builds/stats?days=many`,
      `/api/v1/orgs/default/builds/stats?last=100000`,
    ]) {
      const r = await call(world.adminToken, bad);
      expect({ bad, status: r.status, type: r.type }).toEqual({
        bad,
        status: 400,
        type: expect.stringContaining("application/problem+json"),
      });
    }
    // Another organization's lists: as missing as a missing one, for its non-members.
    const login = await world.server.get("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "dev", password: PASSWORD }),
    });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
    expect(cookie).toContain("=");
    const asDev = async (path: string) => (await world.server.get(path, { headers: { cookie } })).status;
    expect(await asDev("/api/v1/orgs/default/builds")).toBe(200);
    expect(await asDev("/api/v1/orgs/elsewhere/builds")).toBe(404);
    expect(await asDev("/api/v1/orgs/elsewhere/builds/stats")).toBe(404);
    expect(await asDev(`/api/v1/projects/${ids.hidden}/builds`)).toBe(404);
    expect(await asDev(`/api/v1/projects/${ids.hidden}/builds/stats`)).toBe(404);
  });

  test("the API: chart figures per build and per day", async () => {
    const s = await ok(world.adminToken, `/api/v1/projects/${ids.app}/builds/stats?days=7`);
    expect(s.per_day.length).toBe(7);
    const today = new Date().toISOString().slice(0, 10);
    expect(s.per_day.at(-1).day).toBe(today);
    // Each build on the day it was made (a run that crosses midnight UTC has two days of them).
    const perDay = (recent: Json[], days: Json[]) =>
      days.map((d: Json) => {
        const that = recent.filter((r) => r.created_at.slice(0, 10) === d.day);
        return {
          day: d.day,
          finished: that.filter((r) => r.status === "finished").length,
          failed: that.filter((r) => r.status === "failed" || r.status === "expired").length,
        };
      });
    const total = (days: Json[]) =>
      days.reduce((t, d) => ({ finished: t.finished + d.finished, failed: t.failed + d.failed }), {
        finished: 0,
        failed: 0,
      });
    expect(total(s.per_day)).toEqual({ finished: 1, failed: 1 });
    expect(s.per_day).toEqual(perDay(s.recent, s.per_day));
    expect(s.recent.map((r: Json) => r.id)).toEqual([ids.pushed, ids.failed]); // oldest first
    expect(s.recent[0].cache_hit_ratio).toBe(0.75);
    expect(s.recent[1].cache_hit_ratio).toBe(0);
    expect((await ok(world.adminToken, "/api/v1/orgs/default/builds/stats?days=3&last=5")).recent.length).toBe(5);
    const org = await ok(world.adminToken, "/api/v1/orgs/default/builds/stats?days=3&last=500");
    expect(org.per_day.at(-1).day).toBe(today);
    expect(total(org.per_day)).toEqual({ finished: 55, failed: 1 });
    expect(org.per_day).toEqual(perDay(org.recent, org.per_day));
  });

  test("the organization's builds: every project's, with their fields", async () => {
    const page = await open("/orgs/default/builds");
    await page.getByRole("heading", { name: "All builds" }).waitFor();
    await page.locator(`tr[data-build="${ids.pushed}"]`).waitFor({ state: "attached" });
    const api = await list("/api/v1/orgs/default/builds?limit=25");
    expect(await rowIds(page)).toEqual(api.builds.map((b) => b.id));
    const cells = async (id: string) =>
      (await page.locator(`tr[data-build="${id}"] td`).allTextContents()).map((c) => c.trim());
    const pushed = await cells(ids.pushed);
    expect(pushed[0]).toBe("finished");
    expect(pushed[1]).toBe(ids.pushed);
    expect(pushed[2]).toBe("app");
    expect(pushed[3]).toBe("admin");
    expect(pushed[4]).toMatch(/just now|min ago/);
    expect(pushed[5]).toMatch(/ms|s$/);
    expect(pushed[7]).toBe("3/4 (75 %)");
    expect(pushed[8]).toBe("pushed, loaded");
    const failed = await cells(ids.failed);
    expect(failed[0]).toBe("failed");
    expect(failed[3]).toBe("ci-bot (token)");
    expect(failed[7]).toBe("0/1 (0 %)");
    expect((await cells(ids.waiting))[2]).toBe("other-app");
    expect(await page.locator(`tr[data-build="${ids.hiddenBuild}"]`).count()).toBe(0);
    expect(await page.getByRole("link", { name: ids.pushed }).getAttribute("href")).toBe(`/builds/${ids.pushed}`);
    // The organization's charts: builds per day from the organization's figures (every project's).
    const perDay = page.getByRole("figure", { name: "Builds per day, last 30 days" });
    await perDay.waitFor();
    const stats = await ok(world.adminToken, "/api/v1/orgs/default/builds/stats?days=30&last=50");
    const finished = stats.per_day.reduce((n: number, d: Json) => n + d.finished, 0);
    expect(await perDay.getByRole("img").getAttribute("aria-label")).toContain(`${finished} finished`);
    await checkPage(page, "org-builds");
    await page.context().close();
  }, 60_000);

  test("filters narrow the list, match the API and stay in the address", async () => {
    const page = await open("/orgs/default/builds");
    await page.getByRole("heading", { name: "All builds" }).waitFor();
    await page.locator("table.builds tbody tr").first().waitFor();
    await page.getByLabel("Status").selectOption("failed");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/status=failed/);
    await showing(page, [ids.failed]);

    await page.getByLabel("Status").selectOption("");
    await page.getByLabel("Project").selectOption({ label: "app" });
    await page.getByLabel("Started by").selectOption("user");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/started_by=user/);
    const api = await list(`/api/v1/orgs/default/builds?project=${ids.app}&started_by=user`);
    expect(api.builds.map((b) => b.id)).toEqual([ids.pushed]);
    await showing(page, [ids.pushed]);

    // A bookmark of the filtered view shows the same builds and the same filters.
    const bookmark = page.url();
    expect(new URL(bookmark).searchParams.get("project")).toBe(ids.app);
    const again = await open(new URL(bookmark).pathname + new URL(bookmark).search);
    await showing(again, [ids.pushed]);
    expect(await again.getByLabel("Started by").inputValue()).toBe("user");
    expect(await again.getByLabel("Project").inputValue()).toBe(ids.app);

    // Days: from tomorrow on, nothing; to today, everything of the project.
    const day = (d: Date) =>
      `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    await again.getByLabel("From (day)").fill(day(new Date(Date.now() + 86_400_000)));
    await again.getByRole("button", { name: "Apply filters" }).click();
    await again.waitForURL(/since=/);
    await again.getByText("No build matches these filters.").waitFor();
    await checkPage(again, "org-builds-filtered");
    await again.getByRole("link", { name: "Clear filters" }).click();
    await again.waitForURL(/\/orgs\/default\/builds$/);
    await again.locator(`tr[data-build]`).first().waitFor();
    await page.context().close();
    await again.context().close();
  }, 60_000);

  test("pages walk a project's 60 builds with no repeat and no gap, and back", async () => {
    const page = await open(`/projects/${ids.many}`);
    await page.getByRole("heading", { name: "Builds", exact: true }).waitFor();
    const all = (await list(`/api/v1/projects/${ids.many}/builds?limit=200`)).builds.map((b) => b.id);
    expect(all.length).toBe(60);
    const seen: string[][] = [];
    await showing(page, all.slice(0, 25));
    seen.push((await rowIds(page)) as string[]);
    await page.getByRole("button", { name: "Next page" }).click();
    await showing(page, all.slice(25, 50));
    seen.push((await rowIds(page)) as string[]);
    expect(page.url()).toContain("cursor=");
    await page.getByRole("button", { name: "Next page" }).click();
    await showing(page, all.slice(50));
    seen.push((await rowIds(page)) as string[]);
    expect(await page.getByRole("button", { name: "Next page" }).count()).toBe(0);
    expect(seen.flat()).toEqual(all);
    expect(new Set(seen.flat()).size).toBe(60);
    await page.getByRole("button", { name: "Previous page" }).click();
    await showing(page, all.slice(25, 50));
    await page.getByRole("button", { name: "Previous page" }).click();
    await showing(page, all.slice(0, 25));
    expect(await page.getByRole("button", { name: "Previous page" }).count()).toBe(0);
    await page.context().close();
  }, 60_000);

  test("the project's builds tab: its list and charts with their text alternative", async () => {
    const page = await open(`/projects/${ids.app}`);
    await showing(page, [ids.failed, ids.pushed]);
    for (const title of [
      "Build duration, last builds",
      "Cache-hit ratio, last builds",
      "Builds per day, last 30 days",
    ]) {
      const figure = page.getByRole("figure", { name: title });
      await figure.waitFor();
      const label = await figure.getByRole("img").getAttribute("aria-label");
      expect(label).toContain(`${title}: `);
      expect(await figure.locator("table tbody tr").count()).toBeGreaterThan(0);
    }
    const cache = page.getByRole("figure", { name: "Cache-hit ratio, last builds" });
    expect(await cache.getByRole("img").getAttribute("aria-label")).toContain("average 38 % of steps cached, last 0 %");
    expect(await cache.locator("table tbody tr").allTextContents()).toEqual([
      `${ids.pushed}3/475 %`,
      `${ids.failed}0/10 %`,
    ]);
    const perDay = page.getByRole("figure", { name: "Builds per day, last 30 days" });
    expect(await perDay.getByRole("img").getAttribute("aria-label")).toContain("1 finished and 1 failed in 30 days");
    expect(await perDay.locator("rect").count()).toBe(2);
    await checkPage(page, "project-builds");
    await page.context().close();
  }, 60_000);

  test("live: a new build appears at the top and changes in place, without a reload", async () => {
    // A member (the administrator has signed in often enough for the sign-in rate limit).
    const page = await open(`/projects/${ids.other}`, "dev");
    await showing(page, [ids.waiting]);
    // A filtered view in another tab: a new build that does not match stays out of it.
    // (the same session: sign-ins in quick succession are rate limited)
    const failedOnly = await page.context().newPage();
    await failedOnly.goto(`${world.server.url}/orgs/default/builds?status=failed`);
    await showing(failedOnly, [ids.failed]);
    const created = await ok(world.adminToken, "/depot.cli.v1.BuildService/CreateBuild", {
      projectId: ids.other,
      options: [],
    });
    await showing(page, [created.buildId, ids.waiting]);
    const row = page.locator(`tr[data-build="${created.buildId}"] td`);
    expect((await row.allTextContents())[2]).toBe("admin"); // in words, not an id (no project column here)
    await ok(created.buildToken, "/depot.cli.v1.BuildService/FinishBuild", { buildId: created.buildId, success: {} });
    await page.locator(`tr[data-build="${created.buildId}"] .status`, { hasText: "finished" }).waitFor();
    expect(await rowIds(failedOnly)).toEqual([ids.failed]);
    await page.context().close();
  }, 60_000);

  test("another organization's lists are the not-found page", async () => {
    const page = await open("/orgs/elsewhere/builds", "dev");
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    await checkPage(page, "org-builds-not-found");
    await page.goto(`${world.server.url}/projects/${ids.hidden}`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    // Their own organization's list, for contrast: a member sees every project's builds.
    await page.goto(`${world.server.url}/orgs/default/builds`);
    await page.locator("table.builds tbody tr").first().waitFor();
    await page.context().close();
  }, 60_000);

  test("no page asked for anything outside the appliance", () => {
    expect(world.foreign).toEqual([]);
  });
});
