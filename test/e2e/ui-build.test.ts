/**
 * @module test/e2e/ui-build
 * The build page live, in a real browser against the compiled binary, with real builds by the
 * unchanged depot CLI on real builders: a Dockerfile that prints lines slowly, watched from the
 * page (status running then finished without a reload, lines arriving while it runs, the steps'
 * waterfall, search, markup shown as text) and from `slipway builds logs --follow` (every line
 * once, exit with the outcome); cached steps marked on a rebuild; a running build canceled from
 * the page; another organization's build is the not-found page.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { findBuildkitClient } from "../../src/cli/client/build-session.ts";
import { slipwayBinary } from "../support/binary.ts";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { builderImageMissing, writeBusyboxContext } from "../support/builder-image.ts";
import { DEPOT, depotEnv, finished, waitFor } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway } from "../support/serve.ts";

const missing =
  browserMissing ??
  (!existsSync(DEPOT)
    ? `the depot CLI is not installed (${DEPOT})`
    : findBuildkitClient(process.env)?.kind !== "buildx"
      ? "docker-buildx is not installed"
      : await builderImageMissing());

const PASSWORD = "a long enough passphrase";
/** Eight lines a second apart, then markup that must show as text, then a second step. */
const SLOW = [
  `RUN for i in 1 2 3 4 5 6 7 8; do echo "slow-line-$i"; sleep 1; done; echo '<b>x</b>'`,
  "RUN echo second-step > /second",
].join("\n");

integrationSuite("the build page, live, in a real browser with real builds", missing, () => {
  const world = uiWorld({
    tmpPrefix: "slipway-ui-build-",
    adminPassword: PASSWORD,
    builderImage: {},
    serveArgs: ["--set", "builds.health_timeout_seconds=10", "--set", "builds.cancel_grace_seconds=5"],
    serveOptions: { publicHost: "localhost" },
    setUpTimeout: 20 * 60_000,
  });
  /** The API as the administrator: status and parsed body. */
  const api = (method: string, path: string, body?: unknown) => world.apiJson(world.adminToken, method, path, body);
  const ids: Record<string, string> = {};
  const tokens: Record<string, string> = {};

  const context = (name: string, body: string) => {
    const dir = join(world.work, name);
    writeBusyboxContext(dir, body);
    return dir;
  };
  const depotBuild = (token: string, project: string, ctx: string) =>
    Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", ctx], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv(world.server, join(world.work, "home"), token),
    });
  /** The project's newest build other than `known`, once it exists. */
  const newBuild = (project: string, known: Set<string>) =>
    waitFor(
      "the new build",
      async () => {
        const b = (await api("GET", `/api/v1/projects/${project}/builds?limit=1`)).json.builds[0];
        return b && !known.has(b.id) ? (b.id as string) : null;
      },
      60_000,
    );
  const buildStatus = async (id: string) => (await api("GET", `/api/v1/builds/${id}`)).json.status as string;
  const seen = new Set<string>();
  const asAlice = async (path: string): Promise<Page> => {
    const page = await openPage(world.browser, world.server, "/login", world.foreign);
    await signIn(page, "alice", PASSWORD);
    await page.goto(world.server.url + path);
    return page;
  };
  const statusOf = (page: Page) => page.getByRole("status", { name: "Build status" });

  beforeAll(async () => {
    mkdirSync(join(world.work, "home"), { recursive: true });
    expect((await api("POST", "/api/v1/users", { username: "alice", password: PASSWORD })).status).toBe(201);
    expect((await api("POST", "/api/v1/orgs/default/members", { user: "alice", role: "owner" })).status).toBe(201);
    expect((await api("POST", "/api/v1/orgs", { slug: "other", name: "Other", owner: "admin" })).status).toBe(201);
    ids.A = (await api("POST", "/api/v1/orgs/default/projects", { name: "web" })).json.id;
    ids.B = (await api("POST", "/api/v1/orgs/other/projects", { name: "theirs" })).json.id;
    for (const p of ["A", "B"])
      tokens[p] = (
        await api("POST", "/api/v1/tokens", { kind: "project", name: `ci-${p}`, project: ids[p] })
      ).json.token;
  }, 20 * 60_000);

  test(
    "a running build watched on its page and by `slipway builds logs --follow`: lines as they come, then finished",
    async () => {
      const depot = depotBuild(tokens.A!, ids.A!, context("slow", SLOW));
      const id = await newBuild(ids.A!, seen);
      seen.add(id);
      const follow = runSlipway(slipwayBinary(), [
        "builds",
        "logs",
        id,
        "--follow",
        "--server",
        world.server.url,
        "--token",
        tokens.A!,
        "--cacert",
        join(world.server.dataDir, "ca.pem"),
      ]);
      const page = await asAlice(`/builds/${id}`);
      await page.getByRole("heading", { name: `Build ${id}` }).waitFor();
      // Running, and a line arrives while it still runs (the last one is seconds away).
      await statusOf(page)
        .getByText(/created|running/)
        .waitFor();
      await page
        .getByRole("log", { name: "Build log" })
        .getByText("slow-line-2", { exact: true })
        .waitFor({ timeout: 120_000 });
      expect(await buildStatus(id)).toBe("running");
      expect(await page.getByText("slow-line-8", { exact: true }).count()).toBe(0);
      await checkPage(page, "build-running");
      // Finished, without a reload.
      await statusOf(page).getByText("finished").waitFor({ timeout: 120_000 });
      const done = await finished(depot);
      expect(done.code, done.log).toBe(0);
      expect(await buildStatus(id)).toBe("finished");
      const log = page.getByRole("log", { name: "Build log" });
      for (let i = 1; i <= 8; i++) expect(await log.getByText(`slow-line-${i}`, { exact: true }).count()).toBe(1);
      // Markup in the log is text.
      expect(await log.getByText("<b>x</b>", { exact: true }).count()).toBe(1);
      expect(await log.locator("b").count()).toBe(0);
      // The waterfall: every step of the build, each with its bar.
      const steps = page.getByRole("list", { name: "Steps" }).getByRole("listitem");
      await waitFor("the RUN steps in the waterfall", async () => (await steps.count()) >= 3, 10_000);
      expect(
        await page
          .getByRole("list", { name: "Steps" })
          .getByText(/slow-line/)
          .count(),
      ).toBeGreaterThan(0);
      expect(await page.locator(".build-waterfall rect.step-bar").count()).toBeGreaterThanOrEqual(2);
      // Search: counted, highlighted, next and previous.
      await page.getByRole("searchbox", { name: "Search the log" }).fill("slow-line-");
      await page.getByText("1 of 8 matches").waitFor();
      await page.getByRole("button", { name: "Next match" }).click();
      await page.getByText("2 of 8 matches").waitFor();
      await page.getByRole("button", { name: "Previous match" }).click();
      await page.getByRole("button", { name: "Previous match" }).click();
      await page.getByText("8 of 8 matches").waitFor();
      expect(await log.locator("mark").count()).toBe(8);
      expect(await log.locator("mark.current").textContent()).toBe("slow-line-");
      await page.getByRole("searchbox", { name: "Search the log" }).fill("slow-line-5");
      await page.getByText("1 of 1 matches").waitFor();
      // Back to the project.
      expect(await page.getByRole("link", { name: "web" }).first().getAttribute("href")).toBe(`/projects/${ids.A}`);
      await checkPage(page, "build-finished");
      // The CLI printed each line once, in order, and exited with the outcome.
      const cli = await follow;
      expect(cli.code, cli.stderr).toBe(0);
      const lines = cli.stdout.split("\n").filter((l) => /^slow-line-\d$/.test(l));
      expect(lines).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => `slow-line-${i}`));
      await page.context().close();
    },
    10 * 60_000,
  );

  test(
    "the same build again: its steps marked cached",
    async () => {
      const done = await finished(depotBuild(tokens.A!, ids.A!, context("slow", SLOW)));
      expect(done.code, done.log).toBe(0);
      const id = await newBuild(ids.A!, seen);
      seen.add(id);
      const page = await asAlice(`/builds/${id}`);
      await statusOf(page).getByText("finished").waitFor();
      const steps = page.getByRole("list", { name: "Steps" });
      await steps
        .getByText(/slow-line/)
        .first()
        .waitFor();
      expect(await steps.locator(".step-cached").filter({ hasText: "slow-line" }).count()).toBe(1);
      expect(await steps.locator(".step-cached .step-time").first().textContent()).toContain("cached");
      await page.context().close();
    },
    5 * 60_000,
  );

  test(
    "a running build canceled from its page: confirmed, then canceled there and in the API",
    async () => {
      const depot = depotBuild(tokens.A!, ids.A!, context("long", `RUN echo started-long && sleep 120`));
      const id = await newBuild(ids.A!, seen);
      seen.add(id);
      const page = await asAlice(`/builds/${id}`);
      await page.getByRole("log", { name: "Build log" }).getByText("started-long").waitFor({ timeout: 120_000 });
      await page.getByRole("button", { name: "Cancel build" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Yes, cancel it" }).click();
      await statusOf(page).getByText("canceled").waitFor({ timeout: 60_000 });
      expect(await buildStatus(id)).toBe("canceled");
      const done = await finished(depot);
      expect(done.code).not.toBe(0);
      expect(await page.getByRole("button", { name: "Cancel build" }).count()).toBe(0);
      await page.context().close();
    },
    5 * 60_000,
  );

  test(
    "a 10,000-line log: the page shows every line and searches it (how fast: bench:ui)",
    async () => {
      const done = await finished(depotBuild(tokens.A!, ids.A!, context("long-log", "RUN seq 1 10000")));
      expect(done.code, done.log).toBe(0);
      const id = await newBuild(ids.A!, seen);
      seen.add(id);
      const page = await asAlice("/account");
      const t0 = Date.now();
      await page.goto(`${world.server.url}/builds/${id}`);
      const log = page.getByRole("log", { name: "Build log" });
      const text = await (
        await world.server.get(`/api/v1/builds/${id}/logs`, {
          headers: { authorization: `Bearer ${world.adminToken}` },
        })
      ).text();
      const stored = text.split("\n").filter((l) => l !== "").length;
      expect(stored).toBe(10_000);
      // Every line whole (BuildKit cuts its output anywhere; the page never shows a half line).
      await page.getByText(/^10000 lines/).waitFor({ timeout: 30_000 });
      const shown = Date.now() - t0;
      expect(await log.getByText("9999", { exact: true }).count()).toBe(1);
      const t1 = Date.now();
      await page.getByRole("searchbox", { name: "Search the log" }).fill("9999");
      await page.getByText("1 of 1 matches").waitFor();
      const searched = Date.now() - t1;
      expect(await log.locator("mark").count()).toBe(1);
      // To a line in another block: the old block's mark goes, the new one's comes.
      await page.getByRole("searchbox", { name: "Search the log" }).fill("5000");
      await log.locator("#log-line-5000 mark.current").waitFor();
      expect(await log.locator("mark").allTextContents()).toEqual(["5000"]);
      const t2 = Date.now();
      await page.getByRole("searchbox", { name: "Search the log" }).fill("1");
      // Every "1" in `seq 1 10000` counted, two in "11" (4,001 in all).
      const ones = Array.from({ length: 10_000 }, (_, i) => String(i + 1).split("1").length - 1).reduce(
        (a, n) => a + n,
      );
      await page.getByText(`1 of ${ones} matches`, { exact: true }).waitFor();
      expect(await log.locator("mark").count()).toBe(ones);
      await page.getByRole("button", { name: "Next match" }).click();
      await page.getByText(`2 of ${ones} matches`, { exact: true }).waitFor();
      const many = Date.now() - t2;
      await page.getByRole("searchbox", { name: "Search the log" }).fill("");
      await log.locator("mark").first().waitFor({ state: "detached" }); // the count and marks go in one render
      expect(await log.locator("mark").count()).toBe(0);
      expect(await page.getByRole("status").filter({ hasText: "matches" }).count()).toBe(0);
      console.log(
        `  10,000-line log: shown in ${shown} ms, one match found in ${searched} ms, ${ones} matches and next in ${many} ms`,
      );
      await page.context().close();
    },
    5 * 60_000,
  );

  test(
    "another organization's build page is the not-found page",
    async () => {
      const done = await finished(depotBuild(tokens.B!, ids.B!, context("theirs", "RUN echo theirs")));
      expect(done.code, done.log).toBe(0);
      const id = (await api("GET", `/api/v1/projects/${ids.B}/builds?limit=1`)).json.builds[0].id as string;
      const page = await asAlice(`/builds/${id}`);
      await page.getByRole("heading", { name: "Not found" }).waitFor();
      expect(await page.getByText("theirs").count()).toBe(0);
      await page.context().close();
      expect(world.foreign).toEqual([]);
    },
    5 * 60_000,
  );
});
