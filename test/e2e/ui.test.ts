/**
 * @module test/e2e/ui
 * The web UI and the API docs in a real browser (Debian's chromium driven by playwright-core),
 * served by the compiled binary: the status page lists the readiness checks, the docs page
 * renders every operation from the OpenAPI document, and neither asks anything of the internet.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { slipwayBinary } from "../support/binary.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const CHROMIUM = "/usr/bin/chromium";

integrationSuite("web UI in a real browser", existsSync(CHROMIUM) ? null : `no browser at ${CHROMIUM} (apt-get install chromium)`, () => {
  let work: string;
  let server: Served;
  let browser: Browser;
  const foreign: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "slipway-ui-"));
    server = await serve(slipwayBinary(), join(work, "data"));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (server?.proc.exitCode === null) await server.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** A page that trusts nothing but records every request that leaves this server. */
  async function open(path: string): Promise<Page> {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.on("request", (r) => {
      if (!r.url().startsWith(server.url) && !r.url().startsWith("data:")) foreign.push(r.url());
    });
    await page.goto(server.url + path);
    return page;
  }

  test("the status page shows each readiness check", async () => {
    const page = await open("/");
    await page.locator("#checks li").first().waitFor();
    const items = await page.locator("#checks li").allTextContents();
    expect(items).toEqual(expect.arrayContaining(["database:open: pass", "database:migrations: pass", "tls:certificate: pass"]));
    expect(await page.locator("#overall").textContent()).toMatch(/^Version \d+\.\d+\.\d+: ready$/);
    await page.context().close();
  });

  test("the API docs render every documented operation, offline", async () => {
    const page = await open("/api/v1/docs");
    await page.locator(".opblock").first().waitFor({ timeout: 15_000 });
    const paths = await page.locator(".opblock-summary-path").allTextContents();
    const spec = (await (await server.get("/api/v1/openapi.json")).json()) as { paths: Record<string, unknown> };
    expect(paths.map((p) => p.replace(/\u200b/g, "")).sort()).toEqual(Object.keys(spec.paths).sort());
    expect(await page.locator(".errors-wrapper").count()).toBe(0);
    await page.context().close();
  });

  test("no page asked for anything outside the appliance", () => {
    expect(foreign).toEqual([]);
  });
});
