/**
 * @module test/bench/ui
 * `bun test/bench/ui.ts`: the builds lists in real Chromium against the compiled binary.
 *
 *   1. Time to first render (navigation start → the first build row in the page), median of
 *      --runs, each in a fresh browser context (a cold cache, the session cookie only): the
 *      organization's builds and the project page of a project with --builds builds (seeded
 *      through the API as the depot CLI makes them: CreateBuild, ReportStatus, FinishBuild);
 *      baselines: the same pages for a project with 10 builds, and the sign-in page (its button).
 *   2. A build's log page with a --log-lines log (`seq 1 N`, reported through ReportStatus as a
 *      client does), median of --runs, fresh context each: navigation → every line counted in the
 *      page; a search with one match (typed → "1 of 1 matches"); a search matching ~40 % of the
 *      lines, then "Next match" (typed → "2 of N matches"). Baseline: the same on a 10-line log.
 *   3. What the browser downloads for the first page: the HTML, JS and CSS of the organization's
 *      builds, raw and gzipped (from the response bodies the browser received).
 * A report: nothing fails on timing.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { slipwayBinary } from "../support/binary.ts";
import { browserMissing, launchBrowser, setPassword, signIn } from "../support/browser.ts";
import { serve, type Served } from "../support/serve.ts";
import { unitEnvironment } from "../support/unit-env.ts";
import { jsonPoster } from "./admission.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    builds: { type: "string", default: "1000" },
    "log-lines": { type: "string", default: "10000" },
  },
});
const RUNS = intOpt("runs", opts.runs, 5, 100);
const BUILDS = intOpt("builds", opts.builds, 10, 20_000);
const LOG_LINES = intOpt("log-lines", opts["log-lines"], 100, 100_000);
const PASSWORD = "a long enough passphrase";

if (browserMissing) {
  console.error(`ui bench: ${browserMissing}`);
  process.exit(2);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A Connect unary call in JSON, as the depot CLI makes it. */
async function post(server: Served, auth: string, method: string, body: unknown): Promise<Record<string, string>> {
  const path = `/depot.cli.v1.BuildService/${method}`;
  const r = await jsonPoster(server.get)(auth, path, body);
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, string>;
}

async function seed(server: Served, token: string, projectId: string, n: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const created = await post(server, token, "CreateBuild", {
        projectId,
        options: [{ tags: [`bench/app:${i}`], push: i % 2 === 0, load: i % 3 === 0 }],
      });
      const at = new Date().toISOString();
      await post(server, created.buildToken!, "ReportStatus", {
        buildId: created.buildId,
        statuses: [
          {
            vertexes: [0, 1, 2].map((s) => ({
              digest: `sha256:${s}`,
              name: `[${s + 1}/3] RUN step ${s}`,
              cached: (i + s) % 2 === 0,
              started: at,
              completed: at,
            })),
          },
        ],
      });
      await post(server, created.buildToken!, "FinishBuild", {
        buildId: created.buildId,
        ...(i % 7 === 0 ? { error: { error: "RUN make: exit 2" } } : { success: {} }),
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** A finished build whose one step logged `seq 1 lines`, in BuildKit-sized chunks; its id. */
async function seedLog(server: Served, token: string, projectId: string, lines: number): Promise<string> {
  const created = await post(server, token, "CreateBuild", { projectId, options: [{ tags: ["bench/log:1"] }] });
  const at = new Date().toISOString();
  const vertex = "sha256:seq";
  const text = Array.from({ length: lines }, (_, i) => `${i + 1}\n`);
  const logs = [];
  for (let i = 0; i < text.length; i += 200)
    logs.push({
      vertex,
      stream: 1,
      msg: Buffer.from(text.slice(i, i + 200).join("")).toString("base64"),
      timestamp: at,
    });
  await post(server, created.buildToken!, "ReportStatus", {
    buildId: created.buildId,
    statuses: [{ vertexes: [{ digest: vertex, name: `[1/1] RUN seq 1 ${lines}`, started: at, completed: at }], logs }],
  });
  await post(server, created.buildToken!, "FinishBuild", { buildId: created.buildId, success: {} });
  return created.buildId!;
}

/** Milliseconds from navigation start until `selector` is in the page, read by the page's own clock. */
async function firstRender(page: Page, url: string, selector: string): Promise<number> {
  await page.goto(url, { waitUntil: "commit" });
  const handle = await page.waitForFunction(
    (sel: string) => ((globalThis as any).document.querySelector(sel) ? performance.now() : 0),
    selector,
    { polling: "raf", timeout: 60_000 },
  );
  return (await handle.jsonValue()) as number;
}

async function measure(
  browser: Browser,
  state: Awaited<ReturnType<BrowserContext["storageState"]>> | undefined,
  url: string,
  selector: string,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, storageState: state });
    const page = await context.newPage();
    times.push(await firstRender(page, url, selector));
    await context.close();
  }
  return median(times);
}

/**
 * A log page, median of RUNS fresh contexts, all by the page's clock: navigation → "N lines";
 * typing a one-match search → "1 of 1 matches"; typing a search for "1" → its first match, then
 * "Next match" → the second (each from just before the typing).
 */
async function logTimes(
  browser: Browser,
  state: Awaited<ReturnType<BrowserContext["storageState"]>>,
  url: string,
  lines: number,
  one: string,
): Promise<{ shown: number; searched: number; many: number; matches: number }> {
  const shown: number[] = [];
  const searched: number[] = [];
  const many: number[] = [];
  let matches = 0;
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, storageState: state });
    const page = await context.newPage();
    await page.goto(url, { waitUntil: "commit" });
    const handle = await page.waitForFunction(
      (want: string) =>
        [...(globalThis as any).document.querySelectorAll("p.hint")].some((p: any) => p.textContent.startsWith(want))
          ? performance.now()
          : 0,
      `${lines} lines`,
      { polling: "raf", timeout: 60_000 },
    );
    shown.push((await handle.jsonValue()) as number);
    const search = page.getByRole("searchbox", { name: "Search the log" });
    // The page's clock, and its own check of the count (a text search of the whole page by the
    // driver would cost more than the page's own work on a 10,000-line log).
    const pageNow = () => page.evaluate(() => performance.now());
    const counted = async (pattern: string) =>
      (await (
        await page.waitForFunction(
          (re: string) => {
            const text = (globalThis as any).document.querySelector(".log-count")?.textContent ?? "";
            return new RegExp(re).test(text) ? [performance.now(), text] : null;
          },
          pattern,
          { polling: "raf", timeout: 60_000 },
        )
      ).jsonValue()) as [number, string];
    let t = await pageNow();
    await search.fill(one);
    searched.push((await counted("^1 of 1 matches$"))[0] - t);
    t = await pageNow();
    await search.fill("1");
    const [, first] = await counted("^1 of \\d+ matches$");
    await page.getByRole("button", { name: "Next match" }).click();
    many.push((await counted("^2 of \\d+ matches$"))[0] - t);
    matches = Number(/of (\d+)/.exec(first)?.[1]);
    await context.close();
  }
  return { shown: median(shown), searched: median(searched), many: median(many), matches };
}

const work = mkdtempSync(join(tmpdir(), "slipway-bench-ui-"));
const server = await serve(
  slipwayBinary(),
  join(work, "data"),
  ["--set", "volumes.encryption=none"],
  unitEnvironment(), // as the packaged slipway.service runs it
);
const browser = await launchBrowser();
try {
  const admin = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
  await setPassword(server, admin, PASSWORD);
  const project = async (name: string) => {
    const r = await server.get("/api/v1/orgs/default/projects", {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    return ((await r.json()) as { id: string }).id;
  };
  const big = await project("thousand");
  const small = await project("ten");
  const t0 = performance.now();
  await seed(server, admin, big, BUILDS);
  const seedMs = performance.now() - t0;
  await seed(server, admin, small, 10);
  console.log(
    `seeded ${BUILDS} builds through the API (CreateBuild, ReportStatus, FinishBuild; 8 clients) in ${(seedMs / 1000).toFixed(1)} s`,
  );

  // One sign-in; every measured visit is a fresh context carrying only its cookie.
  const signedIn = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await signedIn.newPage();
  await page.goto(`${server.url}/login`);
  await signIn(page, "admin", PASSWORD);
  const state = await signedIn.storageState();
  await signedIn.close();

  const row = "table.builds tbody tr";
  const results = {
    orgBig: await measure(browser, state, `${server.url}/orgs/default/builds`, row),
    projectBig: await measure(browser, state, `${server.url}/projects/${big}`, row),
    projectSmall: await measure(browser, state, `${server.url}/projects/${small}`, row),
    orgSmall: await measure(browser, state, `${server.url}/orgs/default/builds?project=${small}`, row),
    login: await measure(browser, undefined, `${server.url}/login`, "button[type=submit]"),
  };
  // The log builds, made after the lists are measured (in a project of their own) so those count
  // only what they say; one match in each: the last line but one of the long log, "9" of the short.
  const logs = await project("logs");
  const longLog = await seedLog(server, admin, logs, LOG_LINES);
  const shortLog = await seedLog(server, admin, logs, 10);
  const long = await logTimes(browser, state, `${server.url}/builds/${longLog}`, LOG_LINES, String(LOG_LINES - 1));
  const short = await logTimes(browser, state, `${server.url}/builds/${shortLog}`, 10, "9");

  // What the first page costs to download: its HTML, scripts and style sheets.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, storageState: state });
  const p = await context.newPage();
  const bodies: { url: string; kind: string; raw: number; gzip: number; wire: number }[] = [];
  const pending: Promise<void>[] = [];
  p.on("response", (r) => {
    const kind = r.request().resourceType();
    if (!["document", "script", "stylesheet"].includes(kind)) return;
    pending.push(
      r.body().then(async (b) => {
        const sizes = await r.request().sizes();
        bodies.push({
          url: r.url(),
          kind,
          raw: b.length,
          gzip: Bun.gzipSync(new Uint8Array(b)).length,
          wire: sizes.responseBodySize,
        });
      }),
    );
  });
  await p.goto(`${server.url}/orgs/default/builds`);
  await p.locator(row).first().waitFor();
  await p.waitForLoadState("networkidle");
  await Promise.all(pending);
  await context.close();
  const sum = (k: "raw" | "gzip" | "wire", kind?: string) =>
    bodies.filter((b) => !kind || b.kind === kind).reduce((a, b) => a + b[k], 0) / 1024;

  console.log(`\nui bench: ${RUNS} runs per figure (median), fresh browser context each`);
  const rows: Row[] = [
    [`org builds, ${BUILDS + 10} builds: first row`, results.orgBig, results.login, "ms", 0],
    [`project page, ${BUILDS} builds: first row`, results.projectBig, results.projectSmall, "ms", 0],
    [`project page, ${BUILDS} builds vs sign-in page`, results.projectBig, results.login, "ms", 0],
    ["org builds, 10-build project filter: first row", results.orgSmall, results.login, "ms", 0],
    [`log page, ${LOG_LINES} lines: all counted`, long.shown, short.shown, "ms", 0],
    ["log search, one match: typed → shown", long.searched, short.searched, "ms", 0],
    [`log search, ${long.matches} matches (vs ${short.matches}): typed → first, next`, long.many, short.many, "ms", 0],
  ];
  for (const line of table(["metric", "value", "baseline", "ratio", ""], rows)) console.log(line);
  console.log(
    "(baselines: the sign-in page's form, the same page for a project with 10 builds, or the same log page with a 10-line log)",
  );
  console.log("\nfirst page download (org builds): raw / gzip / as sent");
  for (const b of bodies)
    console.log(
      `  ${b.kind.padEnd(10)} ${new URL(b.url).pathname.padEnd(22)} ${(b.raw / 1024).toFixed(1).padStart(7)} KB  ${(b.gzip / 1024).toFixed(1).padStart(6)} KB  ${(b.wire / 1024).toFixed(1).padStart(6)} KB`,
    );
  console.log(
    `  total      ${"".padEnd(22)} ${sum("raw").toFixed(1).padStart(7)} KB  ${sum("gzip").toFixed(1).padStart(6)} KB  ${sum("wire").toFixed(1).padStart(6)} KB  (JS gzipped: ${sum("gzip", "script").toFixed(1)} KB of a 100 KB budget)`,
  );
} finally {
  await browser.close();
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
