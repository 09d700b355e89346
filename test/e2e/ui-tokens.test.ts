/**
 * @module test/e2e/ui-tokens
 * The token and trust pages in a real browser against the compiled binary: a project token
 * created in the UI, read from the page and from the clipboard, accepted by the API for its own
 * project only, shown once, then revoked and refused; organization and user tokens likewise;
 * GitHub Actions and generic (pasted JWKS) trust relationships added and one removed, the API's
 * messages at their fields; a member who is not an owner gets no controls and the API refuses
 * them anyway; another organization's project is the not-found page.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { browserMissing, checkPage, openPage, signIn, uiWorld } from "../support/browser.ts";
import { integrationSuite } from "../support/integration.ts";

const PASSWORD = "a long enough passphrase";

integrationSuite("web UI: tokens and trust", browserMissing, () => {
  const world = uiWorld({ tmpPrefix: "slipway-ui-tokens-", adminPassword: PASSWORD });
  const ids: Record<string, string> = {};

  /** The API as `token` (default: the administrator). */
  const call = (method: string, path: string, body?: unknown, token = world.adminToken) =>
    world.apiJson(token, method, path, body);
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await call(method, path, body);
    expect(`${method} ${path}: ${r.status}`).toMatch(/: 20[01]$/);
    return r.json;
  };

  beforeAll(async () => {
    // acme: olga owns it, ursula is a member; "other" belongs to someone else entirely.
    await ok("POST", "/api/v1/users", { username: "olga", password: PASSWORD });
    await ok("POST", "/api/v1/users", { username: "ursula", password: PASSWORD });
    await ok("POST", "/api/v1/orgs", { slug: "acme", name: "Acme", owner: "olga" });
    await ok("POST", "/api/v1/orgs/acme/members", { user: "ursula", role: "user" });
    await ok("POST", "/api/v1/orgs", { slug: "other", name: "Other" });
    ids.web = (await ok("POST", "/api/v1/orgs/acme/projects", { name: "web" })).id;
    ids.api = (await ok("POST", "/api/v1/orgs/acme/projects", { name: "api" })).id;
    ids.secret = (await ok("POST", "/api/v1/orgs/other/projects", { name: "secret" })).id;
  }, 120_000);

  afterAll(async () => {
    expect(world.foreign).toEqual([]);
  });

  const signedIn = async (username: string, path: string): Promise<Page> => {
    const page = await openPage(world.browser, world.server, `/login?next=${encodeURIComponent(path)}`, world.foreign);
    await signIn(page, username, PASSWORD);
    await page.waitForURL((u) => u.pathname === path);
    return page;
  };

  /** Creates a token named `name` on the page; returns the secret as shown and as copied. */
  const createToken = async (page: Page, name: string) => {
    await page.getByRole("textbox", { name: "Name" }).fill(name);
    await page.getByRole("button", { name: "Create token" }).click();
    const box = page.getByRole("textbox", { name: "Token" });
    await box.waitFor();
    const shown = await box.inputValue();
    await page.getByRole("button", { name: "Copy token" }).click();
    const copied = (await page.evaluate("navigator.clipboard.readText()")) as string;
    expect(copied).toBe(shown);
    // Listed by name, by metadata only.
    await page.getByRole("cell", { name, exact: true }).waitFor();
    return shown;
  };

  const revoke = async (page: Page, name: string) => {
    await page.getByRole("button", { name: `Revoke ${name}` }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Revoke token" }).click();
    await page.getByRole("button", { name: `Revoke ${name}` }).waitFor({ state: "detached" });
    await page
      .getByRole("row")
      .filter({ has: page.getByRole("cell", { name, exact: true }) })
      .getByText("revoked", { exact: true })
      .waitFor();
  };

  test("a project token: created, copied, scoped to its project, shown once, revoked", async () => {
    const path = `/projects/${ids.web}/tokens`;
    const page = await signedIn("olga", path);
    await page.getByRole("heading", { name: "Project tokens" }).waitFor();
    await checkPage(page, "project-tokens");

    // A bad expiry: the API's own message, at its field.
    await page.getByRole("textbox", { name: "Name" }).fill("too late");
    await page.getByLabel("Expires (optional)").fill("2020-01-01T00:00");
    await page.getByRole("button", { name: "Create token" }).click();
    await page.locator("#f-expires_at-note.field-error").waitFor();
    expect(await page.locator("#f-expires_at-note").textContent()).toBe("must be in the future");
    expect(await page.getByLabel("Expires (optional)").getAttribute("aria-invalid")).toBe("true");
    await page.getByLabel("Expires (optional)").fill("");

    const secret = await createToken(page, "ci");
    expect(secret).toMatch(/^slw_p_/);
    await checkPage(page, "project-tokens-created");

    // It works, for that project only.
    expect((await call("GET", `/api/v1/projects/${ids.web}`, undefined, secret)).status).toBe(200);
    expect((await call("GET", `/api/v1/projects/${ids.api}`, undefined, secret)).status).toBe(404);
    expect((await call("GET", "/api/v1/orgs/acme/tokens", undefined, secret)).status).toBe(404);
    const listed = (await ok("GET", `/api/v1/projects/${ids.web}/tokens`)) as { name: string; last_used_at: string }[];
    expect(listed.map((t) => t.name)).toEqual(["ci"]);
    expect(listed[0]?.last_used_at).toBeTruthy();

    // Shown once: after a reload the list has it, the secret is nowhere on the page.
    await page.reload();
    await page.getByRole("cell", { name: "ci", exact: true }).waitFor();
    expect(await page.getByRole("textbox", { name: "Token" }).count()).toBe(0);
    expect(await page.content()).not.toContain(secret);
    expect(await page.locator("body").textContent()).not.toContain(secret);

    await revoke(page, "ci");
    expect((await call("GET", `/api/v1/projects/${ids.web}`, undefined, secret)).status).toBe(401);
    const after = (await ok("GET", `/api/v1/projects/${ids.web}/tokens`)) as { revoked_at: string | null }[];
    expect(after[0]?.revoked_at).toBeTruthy();
    await page.context().close();
  }, 120_000);

  test("organization and user tokens likewise", async () => {
    const page = await signedIn("olga", "/orgs/acme/tokens");
    await page.getByRole("heading", { name: "Organization tokens" }).waitFor();
    // Only organization tokens here: the project token of the first test is on its project's page.
    await page.getByText("No tokens yet.").waitFor();
    await checkPage(page, "org-tokens");
    const orgSecret = await createToken(page, "automation");
    expect(orgSecret).toMatch(/^slw_o_/);
    const projects = await call("GET", "/api/v1/orgs/acme/projects", undefined, orgSecret);
    expect(projects.status).toBe(200);
    expect((projects.json as { name: string }[]).map((p) => p.name).sort()).toEqual(["api", "web"]);
    expect((await call("GET", "/api/v1/orgs/other/projects", undefined, orgSecret)).status).toBe(404);
    await revoke(page, "automation");
    expect((await call("GET", "/api/v1/orgs/acme/projects", undefined, orgSecret)).status).toBe(401);

    await page.goto(`${world.server.url}/account/tokens`);
    await page.getByRole("heading", { name: "User tokens" }).waitFor();
    await checkPage(page, "user-tokens");
    const userSecret = await createToken(page, "laptop");
    expect(userSecret).toMatch(/^slw_u_/);
    const me = await call("GET", "/api/v1/me", undefined, userSecret);
    expect(me.json.username).toBe("olga");
    await revoke(page, "laptop");
    expect((await call("GET", "/api/v1/me", undefined, userSecret)).status).toBe(401);
    await page.context().close();
  }, 120_000);

  test("trust relationships: GitHub Actions and generic with pasted keys, bad values at their fields, removal", async () => {
    const path = `/projects/${ids.web}/trust`;
    const page = await signedIn("olga", path);
    await page.getByRole("heading", { name: "Trust relationships" }).waitFor();
    await checkPage(page, "trust-empty");
    const add = page.getByRole("button", { name: "Add trust relationship" });

    // GitHub Actions: a repository that is not owner/name gets the API's message at its field.
    await page.getByRole("textbox", { name: "Repository (owner/name)" }).fill("not a repository");
    await add.click();
    await page.locator("#f-repository-note.field-error").waitFor();
    expect(await page.locator("#f-repository-note").textContent()).toBe("must be 'owner/name' with GitHub names");
    await page.getByRole("textbox", { name: "Repository (owner/name)" }).fill("acme/app");
    await page.getByRole("textbox", { name: "Ref (optional)" }).fill("refs/heads/main");
    await page.getByRole("textbox", { name: "Environment (optional)" }).fill("production");
    await add.click();
    await page.getByRole("cell", { name: /repository = acme\/app/ }).waitFor();

    // GitHub Enterprise Server: its own issuer; plain http is refused at the issuer field.
    await page.getByRole("radio", { name: "GitHub Enterprise Server" }).check();
    await page.getByRole("textbox", { name: "Issuer URL" }).fill("http://ghe.example.com/_services/token");
    await page.getByRole("textbox", { name: "Repository (owner/name)" }).fill("acme/tools");
    await add.click();
    await page.locator("#f-issuer-note.field-error").waitFor();
    expect(await page.locator("#f-issuer-note").textContent()).toMatch(/^issuer must use https:\/\//);
    await page.getByRole("textbox", { name: "Issuer URL" }).fill("https://ghe.example.com/_services/token");
    await add.click();
    await page.getByRole("cell", { name: /repository = acme\/tools/ }).waitFor();
    await page.getByRole("cell", { name: "GitHub Enterprise Server", exact: true }).waitFor();

    // Generic OIDC with a pasted JWKS (a real public key); first one that is not JSON.
    await page.getByRole("radio", { name: "GitLab / generic OIDC" }).check();
    await page.getByRole("textbox", { name: "Issuer URL" }).fill("https://gitlab.example.com");
    await page.getByRole("textbox", { name: "Claims to require" }).fill("project_path=acme/app\nref_type=branch");
    await page.getByRole("textbox", { name: "JWKS (optional)" }).fill("{ not json");
    await add.click();
    await page.locator("#f-static_jwks-note.field-error").waitFor();
    // A key with private material: the validator's message, at the same field.
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const priv = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as Record<string, unknown>;
    await page
      .getByRole("textbox", { name: "JWKS (optional)" })
      .fill(JSON.stringify({ keys: [{ ...priv, kid: "k1" }] }));
    await add.click();
    await page.getByText("keys/0: must be a public key (private key material was pasted)").waitFor();
    const pub = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as Record<string, unknown>;
    await page
      .getByRole("textbox", { name: "JWKS (optional)" })
      .fill(JSON.stringify({ keys: [{ ...pub, kid: "k1" }] }));
    await add.click();
    await page.getByRole("cell", { name: /project_path = acme\/app/ }).waitFor();
    await checkPage(page, "trust-two");

    type Trust = {
      id: string;
      provider: string;
      issuer: string;
      config: Record<string, unknown>;
      static_jwks: boolean;
    };
    const trusts = (await ok("GET", `/api/v1/projects/${ids.web}/trust`)) as Trust[];
    expect(trusts.map((t) => t.provider)).toEqual(["github", "github", "generic"]);
    expect(trusts[0]).toMatchObject({
      issuer: "https://token.actions.githubusercontent.com",
      static_jwks: false,
      config: { owner: "acme", repository: "acme/app", ref: "refs/heads/main", environment: "production" },
    });
    expect(trusts[1]).toMatchObject({
      issuer: "https://ghe.example.com/_services/token",
      config: { owner: "acme", repository: "acme/tools" },
    });
    expect(trusts[2]).toMatchObject({
      issuer: "https://gitlab.example.com",
      static_jwks: true,
      config: { claims: { project_path: "acme/app", ref_type: "branch" } },
    });

    // Remove the GitHub one, with confirmation.
    const removeApp = page.getByRole("button", { name: "Remove trust GitHub Actions acme/app" });
    await removeApp.click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove trust relationship" }).click();
    await removeApp.waitFor({ state: "detached" });
    const left = (await ok("GET", `/api/v1/projects/${ids.web}/trust`)) as Trust[];
    expect(left.map((t) => t.issuer)).toEqual([
      "https://ghe.example.com/_services/token",
      "https://gitlab.example.com",
    ]);
    await page.context().close();
  }, 120_000);

  test("a member who is not an owner: no controls, and the API refuses them", async () => {
    const page = await signedIn("ursula", `/projects/${ids.web}/tokens`);
    await page.getByText("Only owners of Acme see and manage this project's tokens.").waitFor();
    expect(await page.getByRole("button", { name: "Create token" }).count()).toBe(0);
    await checkPage(page, "project-tokens-member");

    await page.goto(`${world.server.url}/projects/${ids.web}/trust`);
    await page.getByRole("cell", { name: /project_path = acme\/app/ }).waitFor();
    expect(await page.getByRole("button", { name: "Add trust relationship" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /^Remove trust/ }).count()).toBe(0);
    await checkPage(page, "trust-member");

    await page.goto(`${world.server.url}/orgs/acme/tokens`);
    await page.getByText("Only owners of Acme see and manage its tokens.").waitFor();
    expect(await page.getByRole("button", { name: "Create token" }).count()).toBe(0);

    // Sent by hand with this session (and this server's Origin): the role decides, 403.
    const byHand = async (path: string, data: unknown) => (await world.byHand(page, "POST", path, data)).status();
    expect(await byHand("/api/v1/tokens", { kind: "project", name: "x", project: ids.web })).toBe(403);
    expect(await byHand("/api/v1/tokens", { kind: "org", name: "x", org: "acme" })).toBe(403);
    expect(
      await byHand(`/api/v1/projects/${ids.web}/trust`, { provider: "github", owner: "a", repository: "a/b" }),
    ).toBe(403);
    // Its own user tokens it manages.
    expect(await byHand("/api/v1/tokens", { kind: "user", name: "mine" })).toBe(201);
    expect((await ok("GET", `/api/v1/projects/${ids.web}/tokens`)).length).toBe(1);
    await page.context().close();
  }, 120_000);

  test("another organization's project tokens and trust pages are the not-found page", async () => {
    const page = await signedIn("olga", "/orgs/acme/tokens");
    for (const tab of ["tokens", "trust"]) {
      await page.goto(`${world.server.url}/projects/${ids.secret}/${tab}`);
      await page.getByRole("heading", { name: "Not found" }).waitFor();
      expect(await page.locator("body").textContent()).not.toContain("secret");
    }
    await checkPage(page, "project-tokens-foreign");
    await page.goto(`${world.server.url}/orgs/other/tokens`);
    await page.getByRole("heading", { name: "Not found" }).waitFor();
    await page.context().close();
  }, 60_000);
});
