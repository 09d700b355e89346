/**
 * @module test/support/browser
 * The web UI in a real browser for tests: Debian's Chromium driven by playwright-core, pages
 * that record any request leaving the appliance, signing in through the UI, axe-core checks
 * (from node_modules, injected over the debugging protocol so the page's CSP still holds), and
 * screenshots at desktop and phone width kept under `artifacts/ui/`.
 */
import { expect } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import type { Served } from "./serve.ts";

export const CHROMIUM = "/usr/bin/chromium";
/** null when the browser is here; else why the suite cannot run. */
export const browserMissing = existsSync(CHROMIUM) ? null : `no browser at ${CHROMIUM} (apt-get install chromium)`;

export const ARTIFACTS = join(import.meta.dir, "..", "..", "artifacts", "ui");

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };

/** Every URL any page asked for that was not the appliance's own (must stay empty). */
export type ForeignLog = string[];

/**
 * A fresh browser context (its own cookies) with one page at `path`; requests to anywhere but
 * `server` are recorded in `foreign`. Clipboard permissions granted, so copy buttons work.
 */
export async function openPage(
  browser: Browser,
  server: Pick<Served, "url">,
  path: string,
  foreign: ForeignLog,
  viewport = DESKTOP,
): Promise<Page> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  const page = await context.newPage();
  page.on("request", (r) => {
    if (!r.url().startsWith(server.url) && !r.url().startsWith("data:")) foreign.push(r.url());
  });
  await page.goto(server.url + path);
  return page;
}

/** Sign in through the UI's form (the page must be showing it). */
export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByRole("textbox", { name: "Username" }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Give `username` (whose bearer token is `token`) a password, through the API. */
export async function setPassword(server: Pick<Served, "get">, token: string, password: string): Promise<void> {
  const r = await server.get("/api/v1/me/password", {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ new_password: password }),
  });
  expect(r.status).toBe(204);
}

const AXE_SOURCE = readFileSync(join(import.meta.dir, "..", "..", "node_modules", "axe-core", "axe.min.js"), "utf8");

type AxeViolation = { id: string; impact: string | null; help: string; nodes: { target: string[] }[] };

/** axe-core's serious and critical violations on the page as it is now (expected: none). */
export async function seriousA11yViolations(page: Page): Promise<string[]> {
  // Evaluated over the debugging protocol, not as an inline <script>: the page's CSP stays on.
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ["violations"] }).then((r) => r.violations)`,
  )) as AxeViolation[];
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

/** Screenshots of the page at desktop and phone width, as `artifacts/ui/NAME-desktop.png` and `-phone.png`. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const before = page.viewportSize() ?? DESKTOP;
  for (const [label, size] of [
    ["desktop", DESKTOP],
    ["phone", PHONE],
  ] as const) {
    await page.setViewportSize(size);
    // Usable at phone width: nothing wider than the screen (wide tables scroll in their own box).
    const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
    expect(`${name} at ${label}: ${overflow > 0 ? `${overflow}px too wide` : "fits"}`).toBe(
      `${name} at ${label}: fits`,
    );
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize(before);
}

/** axe-clean and photographed: what every page of the UI must pass. */
export async function checkPage(page: Page, name: string): Promise<void> {
  expect(await seriousA11yViolations(page)).toEqual([]);
  await screenshots(page, name);
}
