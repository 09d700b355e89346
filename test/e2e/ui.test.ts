/**
 * @module test/e2e/ui
 * The web UI and the API docs in a real browser (Debian's chromium driven by playwright-core),
 * served by the compiled binary: the status page lists the readiness checks, the docs page
 * renders every operation from the OpenAPI document, and neither asks anything of the internet.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { waitFor } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const CHROMIUM = "/usr/bin/chromium";
const PASSWORD = "a long enough passphrase";

integrationSuite(
  "web UI in a real browser",
  existsSync(CHROMIUM) ? null : `no browser at ${CHROMIUM} (apt-get install chromium)`,
  () => {
    let work: string;
    let server: Served;
    let browser: Browser;
    const foreign: string[] = [];

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), "slipway-ui-"));
      // Plain cache volumes: the volumes check warns on every host, so the page's verdict is fixed.
      server = await serve(slipwayBinary(), join(work, "data"), ["--set", "volumes.encryption=none"]);
      browser = await chromium.launch({
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
    });

    afterAll(async () => {
      await browser?.close();
      if (server?.proc.exitCode === null) await server.stop();
      await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
      rmSync(work, { recursive: true, force: true });
    });

    /** The administrator's password, set on first use (each test runs alone, or after the others). */
    let passwordSet: Promise<void> | null = null;
    const adminPassword = () =>
      (passwordSet ??= (async () => {
        const adminToken = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
        const set = await server.get("/api/v1/me/password", {
          method: "PUT",
          headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
          body: JSON.stringify({ new_password: PASSWORD }),
        });
        expect(set.status).toBe(204);
      })());

    /** A page that trusts nothing but records every request that leaves this server. */
    /** Requests each page made that are not answered yet. */
    const inflight = new Map<Page, number>();
    async function open(path: string): Promise<Page> {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      inflight.set(page, 0);
      page.on("request", (r) => {
        inflight.set(page, inflight.get(page)! + 1);
        if (!r.url().startsWith(server.url) && !r.url().startsWith("data:")) foreign.push(r.url());
      });
      const answered = () => inflight.set(page, inflight.get(page)! - 1);
      page.on("requestfinished", answered);
      page.on("requestfailed", answered);
      await page.goto(server.url + path);
      return page;
    }

    test("the status page shows each readiness check", async () => {
      const page = await open("/");
      await page.locator("#checks li").first().waitFor();
      const items = await page.locator("#checks li").allTextContents();
      expect(items).toEqual(
        expect.arrayContaining(["database:open: pass", "database:migrations: pass", "tls:certificate: pass"]),
      );
      // Degraded, not down: with plain volumes (set above) the volumes check warns (see README).
      expect(items.find((i) => i.startsWith("volumes:encryption: "))).toContain("cache volumes are NOT encrypted");
      expect(await page.locator("#overall").textContent()).toMatch(/^Version \d+\.\d+\.\d+: warn$/);
      await page.context().close();
    });

    test("the API docs render every documented operation, offline", async () => {
      const page = await open("/api/v1/docs");
      await page.locator(".opblock").first().waitFor({ timeout: 15_000 });
      const rendered = await page
        .locator(".opblock")
        .evaluateAll((els) =>
          els.map(
            (e) =>
              `${e.querySelector(".opblock-summary-method")?.textContent} ${e.querySelector(".opblock-summary-path")?.textContent}`,
          ),
        );
      const spec = (await (await server.get("/api/v1/openapi.json")).json()) as {
        paths: Record<string, Record<string, unknown>>;
      };
      const operations = Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      );
      expect(operations.length).toBeGreaterThan(30);
      expect(rendered.map((r) => r.replace(/\u200b/g, "")).sort()).toEqual(operations.sort());
      expect(await page.locator(".errors-wrapper").count()).toBe(0);
      await page.context().close();
    });

    test("a device login is approved in the browser: log in, check the code, approve", async () => {
      const password = PASSWORD;
      await adminPassword();
      const started = (await (
        await server.get("/api/v1/auth/device", {
          method: "POST",
          headers: { "content-type": "application/json", "user-agent": "slipway-ui-test/1.0" },
          body: JSON.stringify({ client_name: "ui-test" }),
        })
      ).json()) as { device_code: string; user_code: string };
      const poll = () =>
        server.get("/api/v1/auth/device/token", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ device_code: started.device_code }),
        });
      expect((await poll()).status).toBe(202);

      // A link that carries the code (as a phisher would send it, either way): never used.
      const page = await open(`/device?code=${started.user_code}#${started.user_code}`);
      await page.locator("#login").waitFor();
      expect(new URL(page.url()).pathname + new URL(page.url()).search + new URL(page.url()).hash).toBe("/device"); // gone from the address bar
      await page.fill('input[name="username"]', "admin");
      await page.fill('input[name="password"]', password);
      await page.click('#login button[type="submit"]');
      await page.locator("#lookup").waitFor();
      // Done with the login: signed in (its last step) and every request the page made answered,
      // so nothing still on its way could fill the code in.
      await page.locator("#who", { hasText: "Signed in as admin." }).waitFor();
      await waitFor("the page's requests to be answered", () => inflight.get(page) === 0, 30_000);
      expect(await page.locator("#code").inputValue()).toBe(""); // not filled in
      expect(await page.locator("#decide").isHidden()).toBe(true); // nothing to approve until the code is typed
      await page.fill("#code", started.user_code.toLowerCase());
      await page.click('#lookup button[type="submit"]');
      await page.locator("#decide").waitFor();
      expect(await page.locator("#req-code").textContent()).toBe(started.user_code);
      // Where the request came from, before the client's own (unverified) name.
      expect(await page.locator("#req-ip").textContent()).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/);
      expect(await page.locator("#req-agent").textContent()).toBe("slipway-ui-test/1.0");
      expect(await page.locator("#req-at").textContent()).toMatch(/\(0 min ago\)$/);
      expect(await page.locator("#req-client").textContent()).toBe("ui-test");
      expect(await page.locator("#req-days").textContent()).toBe("30");
      await page.click("#approve");
      await page.locator("#message", { hasText: /^Approved/ }).waitFor();
      await page.context().close();

      // The approval is there at the next poll (polls closer than the interval may be told to slow down).
      let done = await poll();
      for (const deadline = Date.now() + 60_000; done.status !== 200 && Date.now() < deadline; done = await poll())
        await Bun.sleep(1000);
      expect(done.status).toBe(200);
      const { token } = (await done.json()) as { token: string };
      const me = await server.get("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
      expect(((await me.json()) as { username: string }).username).toBe("admin");
    }, 30_000);

    test("a build's page (its build_url): status, steps and log as reported, and cancel", async () => {
      const adminToken = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
      const call = async (token: string, path: string, body: unknown) =>
        (
          await server.get(path, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify(body),
          })
        ).json() as Promise<Record<string, any>>;
      await adminPassword();
      const project = (await call(adminToken, "/api/v1/orgs/default/projects", { name: "ui-builds" })).id as string;
      const created = await call(adminToken, "/depot.cli.v1.BuildService/CreateBuild", { projectId: project });
      const at = new Date().toISOString();
      await call(created.buildToken, "/depot.cli.v1.BuildService/ReportStatus", {
        buildId: created.buildId,
        statuses: [
          {
            vertexes: [
              { digest: "sha256:aa", name: "[1/2] RUN make <everything>", started: at, completed: at },
              { digest: "sha256:bb", name: "[2/2] COPY out /", cached: true, started: at, completed: at },
            ],
            logs: [
              {
                vertex: "sha256:aa",
                stream: "1",
                timestamp: at,
                msg: Buffer.from("compiling <b>not html</b>\n").toString("base64"),
              },
            ],
          },
        ],
      });
      const page = await open(new URL(created.buildUrl).pathname);
      await page.locator("#login").waitFor();
      await page.fill('input[name="username"]', "admin");
      await page.fill('input[name="password"]', PASSWORD);
      await page.click('#login button[type="submit"]');
      await page.locator("#build").waitFor();
      expect(await page.locator("#build-id").textContent()).toBe(created.buildId);
      expect(await page.locator("#status").textContent()).toBe("created");
      const rows = await page.locator("#steps tr").allTextContents();
      expect(rows[0]).toContain("[1/2] RUN make <everything>"); // text, never markup
      expect(rows[1]).toContain("cached");
      expect(await page.locator("#log").textContent()).toContain("compiling <b>not html</b>");
      await page.click("#cancel");
      await page.locator("#message", { hasText: /^Cancel requested/ }).waitFor();
      const b = (await (
        await server.get(`/api/v1/builds/${created.buildId}`, { headers: { authorization: `Bearer ${adminToken}` } })
      ).json()) as { cancel_requested_at: string | null };
      expect(b.cancel_requested_at).not.toBeNull();
      await page.context().close();
    }, 30_000);

    test("no page asked for anything outside the appliance", async () => {
      // Its own visits (the status page and the docs, loaded whole), beside what the tests before saw.
      for (const [path, ready] of [
        ["/", "#checks li"],
        ["/api/v1/docs", ".opblock"],
      ] as const) {
        const page = await open(path);
        await page.locator(ready).first().waitFor({ timeout: 15_000 });
        await page.waitForLoadState("networkidle");
        await page.context().close();
      }
      expect(foreign).toEqual([]);
    });
  },
);
