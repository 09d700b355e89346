/**
 * @module test/support/browser
 * The web UI in a real browser for tests: Debian's Chromium driven by playwright-core, pages
 * that record any request leaving the appliance, signing in through the UI, axe-core checks
 * (from node_modules, injected over the debugging protocol so the page's CSP still holds), and
 * screenshots at desktop and phone width kept under `artifacts/ui/`; and `uiWorld`, the appliance,
 * browser and administrator every browser suite starts from.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type APIResponse, type Browser, type Page } from "playwright-core";
import { slipwayBinary } from "./binary.ts";
import { removeBuildersOfServed } from "./builder-cleanup.ts";
import { ensureDockerdBuilderImage } from "./builder-image.ts";
import { serve, type ServeOptions, type Served } from "./serve.ts";

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

/** The administrator's password a `uiWorld` sets unless told another. */
export const UI_ADMIN_PASSWORD = "a long enough passphrase";

export interface UiWorldOptions {
  /** The temporary directory's name prefix (default `slipway-ui-`). */
  tmpPrefix?: string;
  /** serve's arguments after `--set volumes.encryption=none` (and the builder image, if asked for). */
  serveArgs?: string[];
  /** serve's options (`publicHost` for the depot CLI, `listenHost` for builders reaching its registry). */
  serveOptions?: ServeOptions;
  /** Start builders from the locally made dockerd builder image (of this suite); serve is told its ref. */
  builderImage?: Parameters<typeof ensureDockerdBuilderImage>[0];
  /** The administrator's password (default UI_ADMIN_PASSWORD). */
  adminPassword?: string;
  /** beforeAll's timeout (making a builder image can take minutes). */
  setUpTimeout?: number;
}

/** An API answer: its status and its body parsed when it is JSON (else null). */
export type ApiAnswer = { status: number; json: any };

/**
 * The appliance (the compiled binary, served from a temporary directory), one browser and the
 * administrator with a password, started in beforeAll and stopped in afterAll (browser closed,
 * serve stopped, its builders removed, the directory deleted), both registered here: call it
 * in the suite's body, before the suite's own beforeAll. Its members are read when tests run.
 */
export function uiWorld(opts: UiWorldOptions = {}) {
  let work: string | undefined;
  let server: Served | undefined;
  let browser: Browser | undefined;
  let adminToken: string | undefined;
  const foreign: ForeignLog = [];
  const adminPassword = opts.adminPassword ?? UI_ADMIN_PASSWORD;
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`uiWorld: ${what} is not started yet (read it in a hook or test)`);
    return value;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), opts.tmpPrefix ?? "slipway-ui-"));
    const image = opts.builderImage
      ? ["--set", `builders.dockerd_image=${(await ensureDockerdBuilderImage(opts.builderImage)).ref}`]
      : [];
    server = await serve(
      slipwayBinary(),
      join(work, "data"),
      ["--set", "volumes.encryption=none", ...image, ...(opts.serveArgs ?? [])],
      {},
      opts.serveOptions ?? {},
    );
    browser = await launchBrowser();
    adminToken = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
    await setPassword(server, adminToken, adminPassword);
  }, opts.setUpTimeout);

  afterAll(async () => {
    await browser?.close();
    if (server?.proc.exitCode === null) await server.stop();
    await removeBuildersOfServed();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const world = {
    get server(): Served {
      return started(server, "serve");
    },
    get browser(): Browser {
      return started(browser, "the browser");
    },
    get adminToken(): string {
      return started(adminToken, "the administrator");
    },
    /** The temporary directory (serve's data is in `data/` under it). */
    get work(): string {
      return started(work, "the temporary directory");
    },
    /** Every request any page of this world made outside the appliance (must stay empty). */
    foreign,
    adminPassword,
    /** The API with the administrator's bearer token (a JSON body when one is given). */
    asAdmin(method: string, path: string, body?: unknown): Promise<Response> {
      return world.server.get(path, {
        method,
        headers: { authorization: `Bearer ${world.adminToken}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    },
    /** The API with `token`: the status and the parsed body (null when it is not JSON). */
    async apiJson(token: string, method: string, path: string, body?: unknown): Promise<ApiAnswer> {
      const r = await world.server.get(path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      return {
        status: r.status,
        json: text && r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : null,
      };
    },
    /** A request the page's own session sends by hand (same origin, as the UI would). */
    byHand(
      page: Page,
      method: "POST" | "PATCH" | "PUT" | "DELETE",
      path: string,
      data?: unknown,
    ): Promise<APIResponse> {
      return page.request.fetch(`${world.server.url}${path}`, { method, data, headers: { origin: world.server.url } });
    },
    /** A new browser context at `path`, signed in there as `username`. */
    async signedIn(username: string, path: string, password = adminPassword): Promise<Page> {
      const page = await openPage(world.browser, world.server, path, foreign);
      await signIn(page, username, password);
      return page;
    },
  };
  return world;
}

/** A response's body, parsed as JSON. */
export const json = async <T>(r: Response | Promise<Response>): Promise<T> => (await (await r).json()) as T;
