/**
 * @module test/e2e/ui-sweep.test
 * Every address the web UI registers (read from its route files, so a new page cannot be left
 * out) opened by an administrator in a real browser against the compiled binary: each renders
 * its own page (a heading, not an error page), axe-core finds nothing serious or critical, it
 * fits a phone's width, and its screenshots are kept. Keyboard use: the first Tab reaches the
 * skip link, and every focusable control has an accessible name.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { browserMissing, checkPage, uiWorld } from "../support/browser.ts";
import { integrationSuite } from "../support/integration.ts";

const PAGES = join(import.meta.dir, "..", "..", "web", "src", "pages");

/** Every `path: "..."` the UI's route files register. */
function registeredPaths(): string[] {
  const paths: string[] = [];
  for (const area of readdirSync(PAGES, { withFileTypes: true }).filter((e) => e.isDirectory())) {
    const text = readFileSync(join(PAGES, area.name, "routes.tsx"), "utf8");
    for (const m of text.matchAll(/path: "([^"]+)"/g)) paths.push(m[1]!);
  }
  return paths.sort();
}

integrationSuite("web UI: every registered page, accessible and at phone width", browserMissing, () => {
  const w = uiWorld({ tmpPrefix: "slipway-ui-sweep-" });

  test("each page renders itself, passes axe, fits 360 px, and is named for the keyboard", async () => {
    const paths = registeredPaths();
    expect(paths.length).toBeGreaterThan(20);
    const project = (await w.apiJson(w.adminToken, "POST", "/api/v1/orgs/default/projects", { name: "sweep" })).json
      .id as string;
    const build = (
      await w.apiJson(w.adminToken, "POST", "/depot.cli.v1.BuildService/CreateBuild", { projectId: project })
    ).json.buildId as string;
    const concrete = (p: string) =>
      p.replace(":org", "default").replace(":id", p.startsWith("/builds/") ? build : project);

    const page = await w.signedIn("admin", "/login");
    const unnamed: string[] = [];
    for (const path of paths) {
      const address = concrete(path);
      await page.goto(w.server.url + address);
      const heading = page.getByRole("heading", { level: 1 });
      await heading.first().waitFor();
      await page.waitForLoadState("networkidle");
      const title = (await heading.first().textContent()) ?? "";
      expect(`${address}: ${title}`).not.toMatch(/: (Not found|Not allowed|Something went wrong|Signed out)$/);
      expect(
        await page
          .getByRole("status")
          .filter({ hasText: /^Loading…$/ })
          .count(),
      ).toBe(0);
      await checkPage(page, `page${path.replace(/[/:]+/g, "-")}`);
      // Keyboard: the first Tab lands on the skip link; every focusable control says what it does.
      await page.locator("body").focus();
      await page.keyboard.press("Tab");
      expect(await page.evaluate("document.activeElement && document.activeElement.textContent")).toBe(
        "Skip to content",
      );
      const nameless = (await page.evaluate(`[...document.querySelectorAll(
        'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])'
      )].filter((el) => {
        const labelled = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.getAttribute("title");
        return !labelled && !(el.textContent || "").trim() && !(el.value && el.type === "submit");
      }).map((el) => el.outerHTML.slice(0, 120))`)) as string[];
      for (const n of nameless) unnamed.push(`${address}: ${n}`);
    }
    expect(unnamed).toEqual([]);
    expect(w.foreign).toEqual([]);
    await page.context().close();
  }, 300_000);
});
