/**
 * @module test/e2e/depot-commands.test
 * The depot CLI's management commands, unchanged (npm @depot/cli-linux-x64), against the compiled
 * `slipway serve`: `projects create|list|get|update|delete`, `list projects`, `list builds`,
 * `cache reset`, `init`, `org list|switch|show` and `logout` print what they should (ids, names,
 * settings); what Slipway cannot do is refused with a message that says why; a refused or foreign
 * request changes nothing, and another tenant's project answers exactly like a missing one.
 * Depot methods Slipway does not serve answer `unimplemented` with what to use instead.
 * A second suite shows `list builds`, `cache reset` and `projects delete` around a real
 * `depot build` on a builder: the reset empties its cache, the delete removes builder and volume.
 *
 * Tenants: alice owns `acme` (her only organization), bob is a `user` of `acme`; `globex` belongs
 * to the administrator alone.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import {
  builderImageMissing,
  docker,
  ensureDockerdBuilderImage,
  writeBusyboxContext,
} from "../support/builder-image.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway, serve, type Served } from "../support/serve.ts";
import { DEPOT, depotEnv } from "../support/depot.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT}; npm installs it on linux-x64)`
  : !Bun.which("script")
    ? "script(1) from bsdutils is not installed (`depot init --project` needs a terminal)"
    : null;

const GIB = 1024 ** 3;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** The depot CLI with its output captured (not a terminal: lists print CSV). */
async function runDepot(
  s: Served,
  home: string,
  token: string | null,
  args: string[],
  opts: { cwd: string; env?: Record<string, string> },
): Promise<Ran> {
  const p = Bun.spawn([DEPOT, ...args], {
    cwd: opts.cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: depotEnv(s, home, token, opts.env),
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}

const csv = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((l) => l.split(","));

integrationSuite(
  "depot CLI commands: projects, list, cache reset, init, org, logout against slipway serve",
  missing,
  () => {
    const work = mkdtempSync(join(tmpdir(), "slipway-depot-cmds-"));
    const home = join(work, "home");
    const depotConfig = join(home, ".config", "depot", "depot.yaml");
    let s: Served;
    let admin = "";
    const tok: Record<"alice" | "bob" | "webToken", string> = { alice: "", bob: "", webToken: "" };
    const org: Record<"acme" | "globex", string> = { acme: "", globex: "" };
    let secret = ""; // globex's project: foreign to alice and bob

    const api = async (token: string, method: string, path: string, body?: unknown) => {
      const r = await s.get(path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      return {
        status: r.status,
        json: text && r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : null,
        text,
      };
    };
    const rpc = async (token: string, method: string, body: unknown, contentType = "application/json") => {
      const r = await s.get(`/${method}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": contentType },
        body: JSON.stringify(body),
      });
      return {
        status: r.status,
        contentType: r.headers.get("content-type"),
        body: new Uint8Array(await r.arrayBuffer()),
      };
    };
    const rpcJson = async (token: string, method: string, body: unknown) => {
      const r = await rpc(token, method, body);
      return { status: r.status, json: JSON.parse(new TextDecoder().decode(r.body)) as Record<string, any> };
    };
    const depot = (token: string | null, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) =>
      runDepot(s, home, token, args, { cwd: opts.cwd ?? work, env: opts.env });
    /** The depot CLI on a pseudo-terminal (script(1)): `depot init` needs one to pick a project. */
    const depotTty = async (token: string, args: string[], cwd: string): Promise<Ran> => {
      for (const a of args) expect(a).toMatch(/^[A-Za-z0-9_.-]+$/); // safe inside script's shell command
      const p = Bun.spawn(["script", "-qec", [DEPOT, ...args].join(" "), "/dev/null"], {
        cwd,
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        env: depotEnv(s, home, token, { TERM: "dumb" }),
      });
      const [stdout, stderr, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      return { code, stdout: stdout.replaceAll("\r", ""), stderr };
    };
    /** Exit 1 with exactly this message, and nothing on stdout. */
    const refused = (r: Ran, message: string | RegExp) => {
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr.trim()).toMatch(
        typeof message === "string" ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) : message,
      );
      expect(r.stdout).toBe("");
    };
    /** Every project on the appliance, as the administrator sees it: id → name and cache settings. */
    const allProjects = async () =>
      Object.fromEntries(
        ((await api(admin, "GET", "/api/v1/projects")).json as any[]).map((p) => [
          p.id,
          `${p.org_id}/${p.name} ${p.cache_size_gb}GB ${p.cache_keep_days}d`,
        ]),
      );

    beforeAll(async () => {
      const dataDir = join(work, "data");
      s = await serve(slipwayBinary(), dataDir, ["--set", "volumes.encryption=none"], {}, { publicHost: "localhost" });
      admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
      for (const username of ["alice", "bob"] as const) {
        expect((await api(admin, "POST", "/api/v1/users", { username })).status).toBe(201);
        const r = await runSlipway(slipwayBinary(), [
          "admin",
          "reset-token",
          "--username",
          username,
          "--data-dir",
          dataDir,
          "--json",
        ]);
        expect(r.code, r.stderr).toBe(0);
        tok[username] = JSON.parse(r.stdout).token;
      }
      org.acme = (await api(admin, "POST", "/api/v1/orgs", { slug: "acme", name: "Acme", owner: "alice" })).json.id;
      org.globex = (
        await api(admin, "POST", "/api/v1/orgs", { slug: "globex", name: "Globex", owner: "admin" })
      ).json.id;
      expect((await api(admin, "POST", "/api/v1/orgs/acme/members", { user: "bob", role: "user" })).status).toBe(201);
      secret = (await api(admin, "POST", "/api/v1/orgs/globex/projects", { name: "secret" })).json.id;
      mkdirSync(home, { recursive: true });
    }, 120_000);

    afterAll(async () => {
      await s?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    const ids: Record<string, string> = {};

    test("projects create: the organization from the token, the cache policy as the project's cache settings; refusals say why and create nothing", async () => {
      const web = await depot(tok.alice, ["projects", "create", "web"]);
      expect(web.code, web.stderr).toBe(0);
      const created = JSON.parse(web.stdout);
      expect(created).toEqual({
        project_id: expect.stringMatching(/^prj_/),
        name: "web",
        cache_policy: { keep_bytes: 50 * GIB, keep_days: 14 },
      });
      ids.web = created.project_id;
      const lean = await depot(tok.alice, [
        "projects",
        "create",
        "lean",
        "--cache-storage-policy",
        "20",
        "--cache-policy-keep-days",
        "7",
      ]);
      expect(lean.code, lean.stderr).toBe(0);
      ids.lean = JSON.parse(lean.stdout).project_id;
      // The organization named explicitly, here by its slug (`depot org switch` below names it by id).
      const named = await depot(tok.alice, ["projects", "create", "named", "-o", "acme"]);
      expect(named.code, named.stderr).toBe(0);
      ids.named = JSON.parse(named.stdout).project_id;
      // An organization token creates in its own organization.
      const orgToken = (
        await api(tok.alice, "POST", "/api/v1/tokens", { kind: "org", name: "automation", org: "acme" })
      ).json.token;
      const auto = await depot(orgToken, ["projects", "create", "auto"]);
      expect(auto.code, auto.stderr).toBe(0);
      expect((await api(admin, "GET", `/api/v1/projects/${JSON.parse(auto.stdout).project_id}`)).json).toMatchObject({
        org_id: org.acme,
        name: "auto",
      });
      refused(
        await depot(orgToken, ["projects", "create", "elsewhere", "-o", org.globex]),
        "not_found: no such organization",
      );
      refused(
        await depot(orgToken, ["projects", "delete", "--project-id", secret, "--yes"]),
        "not_found: no such project",
      );
      expect(
        (await depot(orgToken, ["projects", "delete", "--project-id", JSON.parse(auto.stdout).project_id, "--yes"]))
          .code,
      ).toBe(0);
      expect((await api(admin, "GET", `/api/v1/projects/${ids.web}`)).json).toMatchObject({
        org_id: org.acme,
        name: "web",
        cache_size_gb: 50,
        cache_keep_days: 14,
      });
      expect((await api(admin, "GET", `/api/v1/projects/${ids.lean}`)).json).toMatchObject({
        org_id: org.acme,
        name: "lean",
        cache_size_gb: 20,
        cache_keep_days: 7,
      });
      expect((await api(admin, "GET", `/api/v1/projects/${ids.named}`)).json).toMatchObject({
        org_id: org.acme,
        name: "named",
      });

      const before = await allProjects();
      refused(
        await depot(tok.alice, ["projects", "create", "web"]),
        "failed_precondition: a project named 'web' already exists in this organization",
      );
      refused(
        await depot(tok.alice, ["projects", "create", "my app"]),
        'invalid_argument: the project name "my app" is not allowed: letters, digits, . _ -; up to 63 characters',
      );
      refused(
        await depot(tok.alice, ["projects", "create", "forever", "--cache-policy-keep-days", "0"]),
        "invalid_argument: the cache retention (--cache-policy-keep-days) must be 1 to 3650; got 0 (Slipway has no unlimited setting)",
      );
      refused(
        await depot(tok.alice, ["projects", "create", "huge", "--cache-storage-policy", "0"]),
        "invalid_argument: the cache size per platform (--cache-storage-policy, GB) must be 1 to 10000; got 0 (Slipway has no unlimited setting)",
      );
      // Another tenant's organization answers exactly like one that does not exist.
      const foreign = await depot(tok.alice, ["projects", "create", "intruder", "-o", org.globex]);
      refused(foreign, "not_found: no such organization");
      expect(await depot(tok.alice, ["projects", "create", "intruder", "-o", "org_doesnotexist0000000"])).toEqual(
        foreign,
      );
      // A member without the owner role may see the organization but not add to it.
      refused(await depot(tok.bob, ["projects", "create", "bobs"]), "permission_denied: not allowed: project:create");
      // The administrator sees several organizations: which one must be said.
      refused(
        await depot(admin, ["projects", "create", "where"]),
        /^invalid_argument: name the organization, you can see 3 \(org_\w+, org_\w+, org_\w+\): name it with --organization ORG_ID \(or `depot org switch ORG_ID`\)$/,
      );
      // A project token belongs to no organization it could create projects in.
      tok.webToken = (
        await api(admin, "POST", "/api/v1/tokens", { kind: "project", name: "ci", project: ids.web })
      ).json.token;
      refused(
        await depot(tok.webToken, ["projects", "create", "more"]),
        /^invalid_argument: name the organization: this credential belongs to none/,
      );
      refused(
        await depot(tok.webToken, ["projects", "create", "more", "-o", org.acme]),
        "not_found: no such organization",
      );
      expect(await allProjects()).toEqual(before);
    }, 120_000);

    test("projects list and list projects: the ids and names of the caller's projects, and only those", async () => {
      const expected = [
        ["Project ID", "Name"],
        [ids.lean!, "lean"],
        [ids.named!, "named"],
        [ids.web!, "web"],
      ];
      const list = await depot(tok.alice, ["projects", "list"]);
      expect(list.code, list.stderr).toBe(0);
      expect(csv(list.stdout)).toEqual(expected);
      const alias = await depot(tok.bob, ["list", "projects"]);
      expect(csv(alias.stdout)).toEqual(expected);
      const json = await depot(tok.alice, ["list", "projects", "--output", "json"]);
      expect(JSON.parse(json.stdout)).toEqual([
        { id: ids.lean, name: "lean" },
        { id: ids.named, name: "named" },
        { id: ids.web, name: "web" },
      ]);
      // A project token sees its project alone.
      expect(csv((await depot(tok.webToken, ["projects", "list"])).stdout)).toEqual([
        ["Project ID", "Name"],
        [ids.web!, "web"],
      ]);
      // The SDK's ListProjects (depot.core.v1.ProjectService) answers the same set, with settings.
      const core = await rpcJson(tok.alice, "depot.core.v1.ProjectService/ListProjects", {});
      expect(core.status).toBe(200);
      expect(core.json.projects.map((p: any) => [p.projectId, p.organizationId, p.name, p.cachePolicy])).toEqual([
        [ids.lean, org.acme, "lean", { keepBytes: String(20 * GIB), keepDays: 7, keepGb: 20 }],
        [ids.named, org.acme, "named", { keepBytes: String(50 * GIB), keepDays: 14, keepGb: 50 }],
        [ids.web, org.acme, "web", { keepBytes: String(50 * GIB), keepDays: 14, keepGb: 50 }],
      ]);
    }, 60_000);

    test("projects get and update: settings shown and changed; --region refused; a foreign project answers like a missing one and stays as it was", async () => {
      const got = await depot(tok.bob, ["projects", "get", ids.lean!, "--output", "json"]);
      expect(got.code, got.stderr).toBe(0);
      expect(JSON.parse(got.stdout)).toEqual({
        project_id: ids.lean,
        organization_id: org.acme,
        name: "lean",
        region_id: "",
        created_at: expect.stringMatching(/^\d{4}-/),
        cache_policy: { keep_bytes: 20 * GIB, keep_days: 7 },
      });
      // The project may come from DEPOT_PROJECT_ID (or depot.json) instead.
      expect(
        (await depot(tok.bob, ["projects", "get", "--output", "json"], { env: { DEPOT_PROJECT_ID: ids.lean! } }))
          .stdout,
      ).toBe(got.stdout);
      const table = await depot(tok.alice, ["projects", "get", ids.lean!]);
      expect(table.stdout).toMatch(
        /^Project ID: +prj_\w+\nOrganization ID: +org_\w+\nName: +lean\nRegion: *\nCreated: +\S+\nCache storage: +20 GB\nCache retention: +7 days\n$/,
      );

      const updated = await depot(tok.alice, [
        "projects",
        "update",
        ids.lean!,
        "--name",
        "slim",
        "--cache-storage-policy",
        "30",
        "--output",
        "json",
      ]);
      expect(updated.code, updated.stderr).toBe(0);
      expect(JSON.parse(updated.stdout)).toMatchObject({
        project_id: ids.lean,
        name: "slim",
        cache_policy: { keep_bytes: 30 * GIB, keep_days: 7 },
      });
      expect((await api(admin, "GET", `/api/v1/projects/${ids.lean}`)).json).toMatchObject({
        name: "slim",
        cache_size_gb: 30,
        cache_keep_days: 7,
      });

      const before = await allProjects();
      refused(
        await depot(tok.alice, ["projects", "update", ids.lean!, "--region", "eu-central-1"]),
        "failed to update project: invalid_argument: Slipway has no regions: a project's builds and caches stay on this appliance (leave out --region)",
      );
      refused(
        await depot(tok.alice, ["projects", "update", ids.lean!, "--name", "has space"]),
        'failed to update project: invalid_argument: the project name "has space" is not allowed: letters, digits, . _ -; up to 63 characters',
      );
      refused(
        await depot(tok.alice, ["projects", "update", ids.lean!, "--name", "web"]),
        "failed to update project: failed_precondition: a project named 'web' already exists in this organization",
      );
      refused(
        await depot(tok.alice, ["projects", "update", ids.lean!, "--cache-storage-policy", "20000"]),
        "failed to update project: invalid_argument: the cache size per platform (--cache-storage-policy, GB) must be 1 to 10000; got 20000 (Slipway has no unlimited setting)",
      );
      refused(
        await depot(tok.bob, ["projects", "update", ids.lean!, "--name", "bobs"]),
        "failed to update project: permission_denied: not allowed: project:update",
      );
      refused(
        await depot(tok.webToken, ["projects", "update", ids.web!, "--name", "renamed"]),
        "failed to update project: permission_denied: not allowed: project:update",
      );
      for (const who of [tok.alice, tok.bob, tok.webToken]) {
        const getForeign = await depot(who, ["projects", "get", secret]);
        refused(getForeign, "failed to get project: not_found: no such project");
        expect(await depot(who, ["projects", "get", "prj_doesnotexist00000000"])).toEqual(getForeign);
        const updForeign = await depot(who, ["projects", "update", secret, "--name", "stolen"]);
        refused(updForeign, "failed to update project: not_found: no such project");
        expect(await depot(who, ["projects", "update", "prj_doesnotexist00000000", "--name", "stolen"])).toEqual(
          updForeign,
        );
      }
      expect(await allProjects()).toEqual(before);
    }, 120_000);

    test("projects delete: the owner deletes; a foreign project answers like a missing one and still exists; a member is refused", async () => {
      const before = await allProjects();
      for (const who of [tok.alice, tok.bob]) {
        const foreign = await depot(who, ["projects", "delete", "--project-id", secret, "--yes"]);
        refused(foreign, "not_found: no such project");
        expect(await depot(who, ["projects", "delete", "--project-id", "prj_doesnotexist00000000", "--yes"])).toEqual(
          foreign,
        );
      }
      refused(
        await depot(tok.bob, ["projects", "delete", "--project-id", ids.named!, "--yes"]),
        "permission_denied: not allowed: project:delete",
      );
      refused(
        await depot(tok.webToken, ["projects", "delete", "--project-id", ids.web!, "--yes"]),
        "permission_denied: not allowed: project:delete",
      );
      expect(await allProjects()).toEqual(before);
      expect((await api(admin, "GET", `/api/v1/projects/${secret}`)).json).toMatchObject({
        org_id: org.globex,
        name: "secret",
      });

      const del = await depot(tok.alice, ["projects", "delete", "--project-id", ids.named!, "--yes"]);
      expect(del.code, del.stderr).toBe(0);
      expect(del.stdout).toBe(`Successfully deleted project ${ids.named}\n`);
      expect((await api(admin, "GET", `/api/v1/projects/${ids.named}`)).status).toBe(404);
      const { [ids.named!]: _gone, ...rest } = before;
      expect(await allProjects()).toEqual(rest);
      // Deleted means gone: a second delete is a missing project.
      refused(
        await depot(tok.alice, ["projects", "delete", "--project-id", ids.named!, "--yes"]),
        "not_found: no such project",
      );
    }, 120_000);

    test("list builds: the project's builds, newest first, with their status; another tenant's project answers like a missing one", async () => {
      // Builds made through the same API `depot build` uses, each ended a different way.
      const made: [string, Record<string, unknown>][] = [];
      for (const end of [{ success: {} }, { error: { error: "RUN failed" } }, { canceled: {} }]) {
        const c = await rpcJson(tok.webToken, "depot.cli.v1.BuildService/CreateBuild", {
          projectId: ids.web,
          options: [],
        });
        expect(c.status).toBe(200);
        expect(
          (await rpcJson(tok.webToken, "depot.cli.v1.BuildService/FinishBuild", { buildId: c.json.buildId, ...end }))
            .status,
        ).toBe(200);
        made.push([c.json.buildId, end]);
        await Bun.sleep(5); // distinct creation times
      }
      const listed = await depot(tok.webToken, ["list", "builds", "--project", ids.web!]);
      expect(listed.code, listed.stderr).toBe(0);
      const rows = csv(listed.stdout);
      expect(rows[0]).toEqual(["Build ID", "Status", "Started", "Duration (s)"]);
      expect(rows.slice(1).map((r) => [r[0], r[1]])).toEqual([
        [made[2]![0], "canceled"],
        [made[1]![0], "failed"],
        [made[0]![0], "finished"],
      ]);
      const json = JSON.parse(
        (await depot(tok.alice, ["list", "builds", "--project", ids.web!, "--output", "json"])).stdout,
      );
      expect(json.map((b: any) => b.id)).toEqual(made.map(([id]) => id).reverse());
      // depot.json names the project too.
      writeFileSync(join(work, "depot.json"), JSON.stringify({ id: ids.web }));
      expect(csv((await depot(tok.webToken, ["list", "builds"])).stdout)).toEqual(rows);
      rmSync(join(work, "depot.json"));
      // An empty project lists nothing; another tenant's project is a missing one.
      expect((await depot(tok.alice, ["list", "builds", "--project", ids.lean!])).stdout).toBe("");
      const foreign = await depot(tok.alice, ["list", "builds", "--project", secret]);
      refused(foreign, "not_found: no such project");
      expect(await depot(tok.alice, ["list", "builds", "--project", "prj_doesnotexist00000000"])).toEqual(foreign);
      refused(await depot(tok.webToken, ["list", "builds", "--project", ids.lean!]), "not_found: no such project");
      // Starting a build likewise: a missing project and another tenant's are the same answer.
      const startForeign = await rpcJson(tok.alice, "depot.cli.v1.BuildService/CreateBuild", {
        projectId: secret,
        options: [],
      });
      expect(startForeign).toEqual({ status: 404, json: { code: "not_found", message: "no such project" } });
      expect(
        await rpcJson(tok.alice, "depot.cli.v1.BuildService/CreateBuild", {
          projectId: "prj_doesnotexist00000000",
          options: [],
        }),
      ).toEqual(startForeign);
    }, 60_000);

    test("cache reset: owners reset their project's cache (audited); a member is refused; another tenant's project answers like a missing one", async () => {
      const dir = join(work, "reset");
      mkdirSync(dir);
      writeFileSync(join(dir, "depot.json"), JSON.stringify({ id: ids.web }));
      const r = await depot(tok.alice, ["cache", "reset"], { cwd: dir }); // the project from depot.json
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe("Cache reset for web (Acme)\n");
      const audit = (await api(tok.alice, "GET", "/api/v1/orgs/acme/audit?limit=500")).json as {
        action: string;
        target: string;
      }[];
      expect(audit.filter((e) => e.action === "cache.reset").map((e) => e.target)).toEqual([ids.web!]);

      refused(
        await depot(tok.bob, ["cache", "reset", "--project", ids.web!]),
        "permission_denied: not allowed: cache:reset",
      );
      refused(
        await depot(tok.webToken, ["cache", "reset", "--project", ids.web!]),
        "permission_denied: not allowed: cache:reset",
      );
      const foreign = await depot(tok.alice, ["cache", "reset", "--project", secret]);
      refused(foreign, "not_found: no such project");
      expect(await depot(tok.alice, ["cache", "reset", "--project", "prj_doesnotexist00000000"])).toEqual(foreign);
      const all = (await api(admin, "GET", "/api/v1/audit?limit=500")).json as { action: string; target: string }[];
      expect(all.filter((e) => e.action === "cache.reset").map((e) => e.target)).toEqual([ids.web!]);
    }, 60_000);

    test("init: writes depot.json for a project Slipway lists; a foreign project is not found and nothing is written", async () => {
      const dir = join(work, "init");
      mkdirSync(dir);
      const r = await depotTty(tok.alice, ["init", "--project", ids.web!], dir);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain(`Project web (Acme) initialized in directory ${dir}`);
      expect(JSON.parse(readFileSync(join(dir, "depot.json"), "utf8"))).toEqual({ id: ids.web });
      // Again: the CLI refuses to overwrite without --force.
      const again = await depotTty(tok.alice, ["init", "--project", ids.lean!], dir);
      expect(again.code).toBe(1);
      expect(again.stdout).toContain("already exists");
      expect(JSON.parse(readFileSync(join(dir, "depot.json"), "utf8"))).toEqual({ id: ids.web });

      const other = join(work, "init-foreign");
      mkdirSync(other);
      const foreign = await depotTty(tok.alice, ["init", "--project", secret], other);
      expect(foreign.code).toBe(1);
      expect(foreign.stdout).toContain(`project with ID ${secret} not found`);
      expect(existsSync(join(other, "depot.json"))).toBe(false);
      // Without a terminal the CLI cannot ask: it lists the projects and says what to run.
      const plain = await depot(tok.alice, ["init", "--project", ids.web!], { cwd: other });
      expect(plain.code).toBe(1);
      expect(plain.stdout).toContain(`${ids.web},web`);
      expect(plain.stderr.trim()).toBe("missing project ID; please run `depot init` or `depot build --project <id>`");
      expect(existsSync(join(other, "depot.json"))).toBe(false);
    }, 60_000);

    test("org list, switch, show and logout: the saved login's organizations; switch and logout are local to the CLI", async () => {
      mkdirSync(join(home, ".config", "depot"), { recursive: true });
      writeFileSync(depotConfig, `api_token: ${tok.alice}\n`, { mode: 0o600 });
      const list = await depot(null, ["org", "list"]);
      expect(list.code, list.stderr).toBe(0);
      expect(csv(list.stdout)).toEqual([
        ["Organization ID", "Name"],
        [org.acme, "Acme"],
      ]);
      expect(JSON.parse((await depot(null, ["org", "list", "--output", "json"])).stdout)).toEqual([
        { OrgId: org.acme, Name: "Acme" },
      ]);
      refused(await depot(null, ["org", "show"]), "No organization selected");
      // One organization: switch picks it without asking.
      const sw = await depot(null, ["org", "switch"]);
      expect(sw.code, sw.stderr).toBe(0);
      expect(sw.stdout).toBe("Current organization updated.\n");
      expect((await depot(null, ["org", "show"])).stdout).toBe(`${org.acme}\n`);
      // The selected organization is where `projects create` puts a project.
      const made = await depot(tok.alice, ["projects", "create", "from-switch"]);
      expect(made.code, made.stderr).toBe(0);
      expect((await api(admin, "GET", `/api/v1/projects/${JSON.parse(made.stdout).project_id}`)).json.org_id).toBe(
        org.acme,
      );
      // Switching to another tenant's organization is only a local setting: using it is refused.
      expect((await depot(null, ["org", "switch", org.globex])).code).toBe(0);
      expect((await depot(null, ["org", "show"])).stdout).toBe(`${org.globex}\n`);
      const before = await allProjects();
      refused(await depot(tok.alice, ["projects", "create", "sneaky"]), "not_found: no such organization");
      expect(await allProjects()).toEqual(before);
      // The administrator sees every organization.
      writeFileSync(depotConfig, `api_token: ${admin}\n`, { mode: 0o600 });
      expect(
        csv((await depot(null, ["org", "list"])).stdout)
          .slice(1)
          .map((r) => r[1])
          .sort(),
      ).toEqual(["Acme", "Default", "Globex"]);

      const out = await depot(null, ["logout"]);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toBe("Logout successful!\n");
      expect(readFileSync(depotConfig, "utf8")).not.toContain(admin);
      refused(await depot(null, ["org", "show"]), "No organization selected");
      refused(await depot(null, ["org", "list"]), /^unauthenticated: /);
      // Without a saved login, `org list` takes DEPOT_API_TOKEN (not DEPOT_TOKEN).
      refused(await depot(tok.alice, ["org", "list"]), /^unauthenticated: /);
      expect(csv((await depot(null, ["org", "list"], { env: { DEPOT_API_TOKEN: tok.alice } })).stdout)).toEqual([
        ["Organization ID", "Name"],
        [org.acme, "Acme"],
      ]);
    }, 60_000);

    test("depot methods Slipway does not serve answer `unimplemented` with what to use instead; other unknown paths stay problem+json 404", async () => {
      refused(
        await depot(tok.alice, ["image", "list", "--project", ids.web!, "--output", "json"]),
        "failed to list images: unimplemented: Slipway does not offer depot.build.v1.RegistryService/ListImages: Depot's registry API (`depot image list|rm`) is not part of Slipway",
      );
      refused(
        await depot(tok.alice, ["ci", "status", "run_0000"]),
        "failed to get run status: unimplemented: Slipway does not offer depot.ci.v1.CIService/GetRunStatus: Depot CI (`depot ci`) is not part of Slipway: run jobs on your own CI and build there with `depot build`",
      );
      refused(
        await depot(tok.alice, ["tests", "att_0000", "--output", "json"]),
        "failed to list test results: unimplemented: Slipway does not offer depot.testresults.v1.TestResultsService/ListTestResults: test results and test splitting (`depot tests`) are not part of Slipway",
      );
      // Unary: HTTP 501 with Connect's error JSON; a stream: HTTP 200 and an end-of-stream frame.
      const unary = await rpcJson(tok.alice, "depot.core.v1.ProjectService/AddTrustPolicy", { projectId: ids.web });
      expect(unary).toEqual({
        status: 501,
        json: {
          code: "unimplemented",
          message:
            "Slipway does not offer depot.core.v1.ProjectService/AddTrustPolicy: manage CI trust relationships with `slipway trust` or /api/v1/projects/{id}/trust",
        },
      });
      const stream = await rpc(
        tok.alice,
        "depot.agent.v1.SandboxService/StreamSandboxLogs",
        {},
        "application/connect+proto",
      );
      expect(stream.status).toBe(200);
      expect(stream.contentType).toBe("application/connect+proto");
      expect(stream.body[0]).toBe(0x02); // end of stream
      expect(JSON.parse(new TextDecoder().decode(stream.body.subarray(5)))).toEqual({
        error: {
          code: "unimplemented",
          message: expect.stringContaining("Slipway does not offer depot.agent.v1.SandboxService/StreamSandboxLogs: "),
        },
      });
      // Served methods are not shadowed, and non-depot paths are as before.
      expect(
        (await rpcJson(tok.alice, "depot.core.v1.ProjectService/GetProject", { projectId: ids.web })).json.project.name,
      ).toBe("web");
      const other = await s.get("/not-a-route", { method: "POST" });
      expect(other.status).toBe(404);
      expect(other.headers.get("content-type")).toContain("application/problem+json");
    }, 60_000);
  },
);

const realBuilderMissing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT})`
  : await builderImageMissing();

integrationSuite(
  "depot CLI commands around a real build: list builds, cache reset empties the builder's cache, projects delete frees the builder",
  realBuilderMissing,
  () => {
    const work = mkdtempSync(join(tmpdir(), "slipway-depot-reset-"));
    const home = join(work, "home");
    let s: Served;
    let admin = "";
    let project = "";
    let projectToken = "";
    const api = async (token: string, method: string, path: string, body?: unknown) => {
      const r = await s.get(path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return r.json() as Promise<any>;
    };
    const depot = (token: string, args: string[]) => runDepot(s, home, token, args, { cwd: work });

    beforeAll(async () => {
      const image = await ensureDockerdBuilderImage();
      s = await serve(
        slipwayBinary(),
        join(work, "data"),
        ["--set", `builders.dockerd_image=${image.ref}`, "--set", "volumes.encryption=none"],
        {},
        { publicHost: "localhost" },
      );
      admin = readFileSync(join(s.dataDir, "initial-admin-token"), "utf8").trim();
      project = (await api(admin, "POST", "/api/v1/orgs/default/projects", { name: "app" })).id;
      projectToken = (await api(admin, "POST", "/api/v1/tokens", { kind: "project", name: "ci", project })).token;
      mkdirSync(home, { recursive: true });
    }, 20 * 60_000);

    afterAll(async () => {
      await s?.stop();
      await removeBuildersOf([project]);
      await removeBuildersOfServed(); // and any builder whose project id this file never learned
      rmSync(work, { recursive: true, force: true });
    });

    test("depot build, depot list builds shows it; depot cache reset stops the builder and the next build starts cold", async () => {
      const ctx = join(work, "ctx");
      writeBusyboxContext(ctx, "RUN echo built-here > /built.txt");
      const build = () =>
        depot(projectToken, [
          "build",
          "--project",
          project,
          "--progress",
          "plain",
          "-o",
          `type=local,dest=${join(work, "out")}`,
          ctx,
        ]);
      const first = await build();
      expect(first.code, first.stdout + first.stderr).toBe(0);
      const [latest] = (await api(admin, "GET", `/api/v1/projects/${project}/builds?limit=1`)).builds;
      const listed = await depot(projectToken, ["list", "builds", "--project", project]);
      expect(listed.code, listed.stderr).toBe(0);
      expect(
        csv(listed.stdout)
          .slice(1)
          .map((r) => [r[0], r[1]]),
      ).toEqual([[latest.id, "finished"]]);
      expect(
        (await api(admin, "GET", `/api/v1/projects/${project}/builders`)).map((b: any) => [b.platform, b.state]),
      ).toEqual([["linux/amd64", "idle"]]); // running, no build on it

      const reset = await depot(admin, ["cache", "reset", "--project", project]);
      expect(reset.code, reset.stderr).toBe(0);
      expect(reset.stdout).toBe("Cache reset for app (Default)\n");
      expect((await api(admin, "GET", `/api/v1/projects/${project}/builders`)).map((b: any) => b.state)).toEqual([
        "absent",
      ]);
      const audit = (await api(admin, "GET", "/api/v1/audit?limit=500")) as {
        action: string;
        target: string;
        details: any;
      }[];
      expect(audit.filter((e) => e.action === "cache.reset").map((e) => [e.target, e.details])).toEqual([
        [project, { platforms: ["linux/amd64"] }],
      ]);

      // The same build again: its RUN step is not cached any more.
      const second = await build();
      expect(second.code, second.stdout + second.stderr).toBe(0);
      const [again] = (await api(admin, "GET", `/api/v1/projects/${project}/builds?limit=1`)).builds;
      expect(again.id).not.toBe(latest.id);
      const steps = (await api(admin, "GET", `/api/v1/builds/${again.id}/steps`)) as {
        name: string;
        cached: boolean;
      }[];
      expect(steps.find((x) => x.name.includes("RUN echo built-here"))?.cached).toBe(false);
      expect(
        csv((await depot(projectToken, ["list", "builds", "--project", project])).stdout)
          .slice(1)
          .map((r) => r[0]),
      ).toEqual([again.id, latest.id]);

      // Deleting the project frees what it held: its builder container, its network, its cache volume.
      const label = JSON.stringify({ label: [`io.slipway.project=${project}`] });
      const held = async () => ({
        containers: (await docker().listContainers({ all: true, filters: label })).length,
        networks: (await docker().listNetworks({ filters: label })).length,
        files: readdirSync(s.dataDir, { recursive: true }).filter((p) => String(p).includes(project)).length,
      });
      const before = await held();
      expect(before.containers).toBe(1);
      expect(before.files).toBeGreaterThan(0);
      const del = await depot(admin, ["projects", "delete", "--project-id", project, "--yes"]);
      expect(del.code, del.stderr).toBe(0);
      expect(del.stdout).toBe(`Successfully deleted project ${project}\n`);
      expect(await held()).toEqual({ containers: 0, networks: 0, files: 0 });
      expect(await api(admin, "GET", `/api/v1/projects/${project}`)).toMatchObject({ status: 404 });
    }, 600_000);
  },
);
