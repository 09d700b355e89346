/**
 * @module test/e2e/cli-identity
 * The client-side commands of the compiled binary against a served appliance: login (token and
 * device flow) saving a private client config, flags > env > saved config, organizations,
 * members, projects and settings, tokens and their scopes, trust relationships, offline admin
 * recovery while serving, logout, JSON output everywhere, and logs free of every secret made.
 * Each test has its own HOME / XDG_CONFIG_HOME: nothing touches the real user's config.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { serve, type CommandResult, type Served } from "../support/serve.ts";

setDefaultTimeout(30_000); // each test runs the binary a dozen times, ~0.3 s each

// Started at load time (not in beforeAll): every test below uses the one server.
const bin = slipwayBinary();
const work = mkdtempSync(join(tmpdir(), "slipway-cli-identity-"));
const server: Served = await serve(bin, join(work, "data"));
const adminToken = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
const caFile = join(server.dataDir, "ca.pem");
const caPem = readFileSync(caFile, "utf8");
/** Every secret any command produced: none may ever appear in the server's log. */
const secrets: string[] = [adminToken];

afterAll(async () => {
  if (server.proc.exitCode === null) await server.stop();
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});

type Env = Record<string, string>;
let homes = 0;

/** A fresh HOME and XDG_CONFIG_HOME; `config` is where the client config must land. */
function newHome(): { env: Env; config: string; dir: string } {
  const home = join(work, `home-${++homes}`);
  mkdirSync(home, { recursive: true });
  const xdg = join(home, "xdg");
  return {
    env: { HOME: home, XDG_CONFIG_HOME: xdg },
    config: join(xdg, "slipway", "client.json"),
    dir: join(xdg, "slipway"),
  };
}

async function cli(args: string[], env: Env, stdin?: string): Promise<CommandResult> {
  const proc = Bun.spawn([bin, ...args], {
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

/** Runs with --json, expects exit 0, returns the parsed stdout. */
async function json<T = any>(args: string[], env: Env, stdin?: string): Promise<T> {
  const r = await cli([...args, "--json"], env, stdin);
  if (r.code !== 0) throw new Error(`slipway ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function failed(r: CommandResult, code: number, message: string | RegExp): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code, stderr: expect.stringMatching(message) });
  expect(r.stderr).not.toContain("    at "); // one line, no stack trace
}

/** A home logged in as the administrator with `login --token`. */
async function adminHome(): Promise<Env> {
  const h = newHome();
  await json(["login", "--server", server.url, "--token", adminToken, "--cacert", caFile], h.env);
  return h.env;
}

const me = (token: string) => server.get("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });

// What the tests below stand on, made on first use and shared after: each test runs alone
// (bun test -t NAME) as well as after the tests that would otherwise have made it.
const once = <T>(make: () => Promise<T>) => {
  let made: Promise<T> | null = null;
  return () => (made ??= make());
};
const api = async (method: string, path: string, body?: unknown) => {
  const r = await server.get(path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, json: (await r.json().catch(() => null)) as any };
};
/** A logged-in administrator's home. */
const adminEnv = once(adminHome);
/** The organization "acme". */
const acmeOrg = once(async () => {
  if ((await api("GET", "/api/v1/orgs/acme")).status !== 200)
    expect((await api("POST", "/api/v1/orgs", { slug: "acme", name: "Acme Inc" })).status).toBe(201);
});
/** Project ORG/NAME's id, created when missing. */
const projectId = async (org: string, name: string): Promise<string> => {
  const found = ((await api("GET", `/api/v1/orgs/${org}/projects`)).json as { id: string; name: string }[]).find(
    (x) => x.name === name,
  );
  if (found) return found.id;
  const made = await api("POST", `/api/v1/orgs/${org}/projects`, { name });
  expect(made.status).toBe(201);
  return made.json.id as string;
};
/** acme/web-app (made and renamed by the projects test) and default/other. */
const projectIds = once(async () => {
  await acmeOrg();
  return { acmeProject: await projectId("acme", "web-app"), otherProject: await projectId("default", "other") };
});
/** The user bob (made offline by the create-user test). */
const bob = once(async () => {
  const r = await cli(["admin", "create-user", "--username", "bob", "--data-dir", server.dataDir], {});
  if (r.code !== 0) expect(r.stderr).toContain("already exists");
});

describe("login and the saved client config", () => {
  test("login --token checks the token and saves server, token and CA privately; later commands need no flags", async () => {
    const h = newHome();
    const out = await json(["login", "--server", server.url, "--token", adminToken, "--cacert", caFile], h.env);
    expect(out).toMatchObject({ server: server.url, username: "admin", is_admin: true, config: h.config });
    expect(statSync(h.config).mode & 0o777).toBe(0o600);
    expect(statSync(h.dir).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(readFileSync(h.config, "utf8"));
    expect(saved).toMatchObject({ server: server.url, token: adminToken, cacert_pem: caPem }); // the PEM, not its path
    const orgs = await json<{ slug: string }[]>(["orgs", "list"], h.env); // no --server, --token or --cacert
    expect(orgs.map((o) => o.slug)).toContain("default");
    const human = await cli(["orgs", "list"], h.env);
    expect(human.stdout).toMatch(/^SLUG\s+NAME\s+ID\s+CREATED\n/);
  });

  test("a wrong token exits 1 and saves nothing; so does an untrusted certificate, with a hint", async () => {
    const h = newHome();
    const wrong = await cli(
      ["login", "--server", server.url, "--token", `slw_u_${"A".repeat(33)}`, "--cacert", caFile],
      h.env,
    );
    failed(wrong, 1, /did not accept the token.*nothing was saved/);
    expect(existsSync(h.config)).toBe(false);
    const untrusted = await cli(["login", "--server", server.url, "--token", adminToken], h.env);
    failed(untrusted, 1, new RegExp(`cannot reach ${server.url}: .*--cacert <data-dir>/ca.pem`));
    expect(existsSync(h.config)).toBe(false);
    const down = await cli(["login", "--server", "https://127.0.0.1:1", "--token", adminToken], h.env);
    failed(down, 1, /cannot reach https:\/\/127\.0\.0\.1:1: .*is the server running\?/);
    expect(existsSync(h.config)).toBe(false);
  });

  test("no login is a usage error naming 'slipway login'; flags beat env, env beats the saved config", async () => {
    const admin = await adminEnv();
    const h = newHome();
    failed(
      await cli(["orgs", "list"], h.env),
      2,
      /not logged in: run 'slipway login --server URL' \(or pass --server and --token\)/,
    );
    failed(await cli(["login"], h.env), 2, /login needs --server URL/);
    const viaEnv = await json(["orgs", "list"], {
      ...h.env,
      SLIPWAY_SERVER: server.url,
      SLIPWAY_TOKEN: adminToken,
      SLIPWAY_CACERT: caFile,
    });
    expect(viaEnv.length).toBeGreaterThan(0);
    const bad = `slw_u_${"B".repeat(33)}`;
    failed(await cli(["orgs", "list"], { ...admin, SLIPWAY_TOKEN: bad }), 1, /Authentication required/); // env over saved
    expect((await cli(["orgs", "list", "--token", adminToken], { ...admin, SLIPWAY_TOKEN: bad })).code).toBe(0); // flag over env
    // The saved token is never sent to another server named with --server.
    failed(await cli(["orgs", "list", "--server", "https://127.0.0.1:1"], admin), 2, /not logged in/);
  });

  test("--token-file FILE and --token-file - (stdin) keep the token out of argv; --token in argv works but warns", async () => {
    const h = newHome();
    const base = ["orgs", "list", "--server", server.url, "--cacert", caFile];
    const file = join(work, "admin-token");
    writeFileSync(file, `${adminToken}\n`, { mode: 0o600 });
    const fromFile = await cli([...base, "--token-file", file, "--json"], h.env);
    expect(fromFile.code).toBe(0);
    expect(fromFile.stderr).toBe("");
    expect((JSON.parse(fromFile.stdout) as { slug: string }[]).map((o) => o.slug)).toContain("default");
    const fromStdin = await cli([...base, "--token-file", "-", "--json"], h.env, `${adminToken}\n`);
    expect(fromStdin.code).toBe(0);
    expect(fromStdin.stderr).toBe("");
    // login saves a token read from stdin like one given with --token.
    const login = await json(
      ["login", "--server", server.url, "--cacert", caFile, "--token-file", "-"],
      h.env,
      adminToken,
    );
    expect(login).toMatchObject({ username: "admin" });
    expect(JSON.parse(readFileSync(h.config, "utf8")).token).toBe(adminToken);

    const inArgv = await cli([...base, "--token", adminToken, "--json"], h.env);
    expect(inArgv.code).toBe(0);
    expect(inArgv.stderr).toContain(
      "warning: --token puts the token where other users of this host can read it (ps, /proc); use --token-file FILE, --token-file - (stdin) or SLIPWAY_TOKEN",
    );
    expect(inArgv.stderr).not.toContain(adminToken);
    // No env variable or saved token is warned about.
    expect((await cli(["orgs", "list", "--json"], { ...h.env, SLIPWAY_TOKEN: adminToken })).stderr).toBe("");

    failed(
      await cli([...base, "--token", adminToken, "--token-file", file], h.env),
      2,
      /give the token once: --token or --token-file, not both/,
    );
    failed(
      await cli([...base, "--token-file", join(work, "missing")], h.env),
      2,
      /--token-file ".*missing": cannot read it \(ENOENT\)/,
    );
    failed(await cli([...base, "--token-file", "-"], h.env, ""), 2, /--token-file - \(stdin\) holds no token/);
  });
});

describe("organizations and members", () => {
  test("orgs create and list; conflicts and invalid slugs are the server's message, exit 1", async () => {
    const admin = await adminEnv();
    const org = await json(["orgs", "create", "--slug", "acme", "--name", "Acme Inc"], admin);
    expect(org).toMatchObject({ slug: "acme", name: "Acme Inc", id: expect.stringMatching(/^org_/) });
    const list = await json<{ slug: string }[]>(["orgs", "list"], admin);
    expect(list.map((o) => o.slug).sort()).toEqual(["acme", "default"]);
    failed(
      await cli(["orgs", "create", "--slug", "acme", "--name", "Again"], admin),
      1,
      /Conflict: an organization with slug 'acme' already exists/,
    );
    failed(await cli(["orgs", "create", "--slug", "Not Valid", "--name", "x"], admin), 1, /Invalid input: .*\/slug/);
    failed(await cli(["orgs", "create", "--name", "x"], admin), 2, /orgs create needs --slug/);
    failed(await cli(["orgs", "list", "--slug", "x"], admin), 2, /orgs list does not take --slug/);
  });

  test("admin create-user works offline on the data dir while serve runs", async () => {
    const password = "correct horse battery staple";
    secrets.push(password);
    const bob = await json(
      ["admin", "create-user", "--username", "bob", "--password-stdin", "--data-dir", server.dataDir],
      {},
      `${password}\n`,
    );
    expect(bob).toMatchObject({
      username: "bob",
      is_admin: false,
      password_set: true,
      id: expect.stringMatching(/^usr_/),
    });
    const login = await server.get("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "bob", password }),
    });
    expect(login.status).toBe(200);
    const carol = await cli(
      ["admin", "create-user", "--username", "carol", "--admin", "--data-dir", server.dataDir],
      {},
    );
    expect(carol.code).toBe(0);
    expect(carol.stdout).toContain("created user carol");
    failed(
      await cli(["admin", "create-user", "--username", "bob", "--data-dir", server.dataDir], {}),
      1,
      /user 'bob' already exists/,
    );
    failed(
      await cli(
        ["admin", "create-user", "--username", "dave", "--password-stdin", "--data-dir", server.dataDir],
        {},
        "short\n",
      ),
      1,
      /at least 12 characters/,
    );
    failed(
      await cli(["admin", "create-user", "--username", "-bad name", "--data-dir", server.dataDir], {}),
      2,
      /--username/,
    );
    failed(
      await cli(["admin", "create-user", "--username", "eve", "--data-dir", join(work, "no-such-data")], {}),
      1,
      /no database at/,
    );
    // Audited under the CLI's own name.
    const audit = (await (
      await server.get("/api/v1/audit", { headers: { authorization: `Bearer ${adminToken}` } })
    ).json()) as { actor: string; action: string }[];
    expect(audit.filter((e) => e.action === "user.create").map((e) => e.actor)).toEqual(["cli:admin", "cli:admin"]);
  });

  test("members add, set-role, list and remove; the last owner cannot be removed", async () => {
    const admin = await adminEnv();
    await acmeOrg();
    await bob();
    expect(await json(["members", "add", "--org", "acme", "--user", "bob"], admin)).toMatchObject({
      username: "bob",
      role: "user",
    });
    expect(
      await json(["members", "set-role", "--org", "acme", "--user", "bob", "--role", "owner"], admin),
    ).toMatchObject({ username: "bob", role: "owner" });
    const list = await json<{ username: string; role: string }[]>(["members", "list", "--org", "acme"], admin);
    expect(list.map((m) => [m.username, m.role])).toEqual([
      ["admin", "owner"],
      ["bob", "owner"],
    ]);
    const human = await cli(["members", "list", "--org", "acme"], admin);
    expect(human.stdout).toMatch(/^USER\s+ROLE\s+USER ID\s+SINCE\nadmin\s+owner\s+usr_/);
    await json(["members", "set-role", "--org", "acme", "--user", "bob", "--role", "user"], admin);
    failed(
      await cli(["members", "remove", "--org", "acme", "--user", "admin"], admin),
      1,
      /Conflict: an organization must keep at least one owner/,
    );
    failed(
      await cli(["members", "set-role", "--org", "acme", "--user", "bob", "--role", "boss"], admin),
      2,
      /--role "boss": expected owner or user/,
    );
    expect(await json(["members", "remove", "--org", "acme", "--user", "bob"], admin)).toMatchObject({ removed: true });
    expect(
      (await json<{ username: string }[]>(["members", "list", "--org", "acme"], admin)).map((m) => m.username),
    ).toEqual(["admin"]);
  });
});

describe("projects", () => {
  test("create, show, update, list and delete, with settings", async () => {
    const admin = await adminEnv();
    await acmeOrg();
    const p = await json(
      [
        "projects",
        "create",
        "--org",
        "acme",
        "--name",
        "web",
        "--cache-size-gb",
        "20",
        "--builder-cpus",
        "4",
        "--builder-memory-mb",
        "8192",
        "--builder-idle-timeout",
        "600",
        "--build-timeout",
        "1800",
      ],
      admin,
    );
    expect(p).toMatchObject({
      name: "web",
      cache_size_gb: 20,
      cache_keep_days: 14,
      builder_cpus: 4,
      builder_memory_mb: 8192,
      builder_idle_timeout_seconds: 600,
      build_timeout_seconds: 1800,
    });
    expect(await json(["projects", "show", p.id], admin)).toEqual(p);
    expect(await json(["projects", "show", "acme/web"], admin)).toEqual(p); // ORG/NAME works too
    const human = await cli(["projects", "show", p.id], admin);
    expect(human.stdout).toMatch(/organization:\s+acme\n/);
    expect(human.stdout).toMatch(/cache size:\s+20 GB\n/);
    const updated = await json(["projects", "update", p.id, "--name", "web-app", "--cache-keep-days", "30"], admin);
    expect(updated).toMatchObject({ id: p.id, name: "web-app", cache_keep_days: 30, cache_size_gb: 20 });
    failed(await cli(["projects", "update", p.id], admin), 2, /needs something to change/);
    failed(
      await cli(["projects", "update", p.id, "--builder-cpus", "0"], admin),
      2,
      /--builder-cpus "0": expected a whole number from 1 to 256/,
    );
    failed(
      await cli(["projects", "create", "--org", "acme", "--name", "bad name"], admin),
      1,
      /Invalid input: .*\/name/,
    );

    await json(["projects", "create", "--org", "default", "--name", "other"], admin);
    const scratch = await json(["projects", "create", "--org", "acme", "--name", "scratch"], admin);
    expect(
      (await json<{ name: string }[]>(["projects", "list", "--org", "acme"], admin)).map((x) => x.name).sort(),
    ).toEqual(["scratch", "web-app"]);
    expect((await json<{ name: string }[]>(["projects", "list"], admin)).map((x) => x.name).sort()).toEqual([
      "other",
      "scratch",
      "web-app",
    ]);
    expect(await json(["projects", "delete", scratch.id], admin)).toEqual({ id: scratch.id, deleted: true });
    failed(await cli(["projects", "show", scratch.id], admin), 1, /Not found/);
    // A missing ORG/NAME, in a known or an unknown organization, answers like a missing id.
    const missingId = await cli(["projects", "show", scratch.id], admin);
    for (const ref of ["acme/scratch", "nowhere/web-app"]) {
      const r = await cli(["projects", "show", ref], admin);
      expect({ code: r.code, stderr: r.stderr.replace(/ \(request [^)]*\)/, "") }).toEqual({
        code: missingId.code,
        stderr: missingId.stderr.replace(/ \(request [^)]*\)/, ""),
      });
    }
    failed(await cli(["projects", "show"], admin), 2, /projects show needs P/);
  });
});

describe("tokens", () => {
  test("a project token (--json is exactly id and token) reads its project, nothing else, until revoked", async () => {
    const admin = await adminEnv();
    const ids = await projectIds();
    const r = await cli(["tokens", "create", "--project", ids.acmeProject, "--name", "ci", "--json"], admin);
    expect(r.code).toBe(0);
    const created = JSON.parse(r.stdout) as { id: string; token: string };
    expect(Object.keys(created).sort()).toEqual(["id", "token"]);
    expect(created.token).toMatch(/^slw_p_/);
    secrets.push(created.token);
    const scoped = { ...admin, SLIPWAY_TOKEN: created.token };
    expect(await json(["projects", "show", ids.acmeProject], scoped)).toMatchObject({ id: ids.acmeProject });
    const h = newHome();
    failed(
      await cli(["login", "--server", server.url, "--token", created.token, "--cacert", caFile], h.env),
      1,
      /login saves user tokens only/,
    );
    expect(existsSync(h.config)).toBe(false);
    failed(await cli(["projects", "show", ids.otherProject], scoped), 1, /Not found|Forbidden/);
    const listed = await json<{ id: string; kind: string; revoked_at: string | null }[]>(
      ["tokens", "list", "--org", "acme"],
      admin,
    );
    expect(listed.find((t) => t.id === created.id)).toMatchObject({ kind: "project", revoked_at: null });
    const revoked = await json(["tokens", "revoke", created.id], admin);
    expect(revoked.revoked_at).toEqual(expect.any(String));
    failed(await cli(["projects", "show", ids.acmeProject], scoped), 1, /Authentication required/);
  });

  test("--expires sets expires_at; a bad duration is a usage error; human output shows the secret once", async () => {
    const admin = await adminEnv();
    const ids = await projectIds();
    const before = Date.now();
    const { id, token } = await json(
      ["tokens", "create", "--project", "acme/web-app", "--name", "short", "--expires", "1d"],
      admin,
    );
    secrets.push(token);
    const listed = await json<{ id: string; expires_at: string }[]>(
      ["tokens", "list", "--project", ids.acmeProject],
      admin,
    );
    const expires = Date.parse(listed.find((t) => t.id === id)!.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 86400_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 86400_000 + 1000);
    for (const bad of ["1y", "0d", "-3h", "soon", "12"])
      failed(
        await cli(["tokens", "create", "--name", "x", `--expires=${bad}`], admin),
        2,
        /--expires .*expected a duration like 90m, 12h, 30d/,
      );

    const human = await cli(["tokens", "create", "--name", "laptop"], admin);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^slw_u_[A-Za-z0-9]{33}\n$/); // only the secret on stdout
    expect(human.stderr).toContain("only time the token is shown");
    secrets.push(human.stdout.trim());
    const own = await json<{ name: string }[]>(["tokens", "list"], admin);
    expect(own.map((t) => t.name)).toEqual(expect.arrayContaining(["initial-admin", "laptop"]));
    const org = await json(["tokens", "create", "--org", "acme", "--name", "automation"], admin);
    secrets.push(org.token);
    expect(org.token).toMatch(/^slw_o_/);
    failed(
      await cli(["tokens", "create", "--org", "acme", "--project", ids.acmeProject, "--name", "x"], admin),
      2,
      /not both/,
    );
  });
});

describe("trust relationships", () => {
  test("add a GitHub repository and a generic issuer, list, remove", async () => {
    const admin = await adminEnv();
    const ids = await projectIds();
    const gh = await json(["trust", "add", "--project", ids.acmeProject, "--github", "acme/app"], admin);
    expect(gh).toMatchObject({
      provider: "github",
      issuer: "https://token.actions.githubusercontent.com",
      config: { owner: "acme", repository: "acme/app" },
    });
    const generic = await json(
      [
        "trust",
        "add",
        "--project",
        "acme/web-app",
        "--issuer",
        "https://ci.example.com",
        "--claim",
        "sub=repo:acme/*",
        "--claim",
        "ref=main",
        "--audience",
        "slipway",
      ],
      admin,
    );
    expect(generic).toMatchObject({
      provider: "generic",
      issuer: "https://ci.example.com",
      audiences: ["slipway"],
      config: { claims: { sub: "repo:acme/*", ref: "main" } },
    });
    const jwks = join(work, "jwks.json");
    writeFileSync(
      jwks,
      JSON.stringify({
        keys: [
          {
            kty: "EC",
            crv: "P-256",
            kid: "k1",
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
          },
        ],
      }),
    );
    const bk = await json(
      ["trust", "add", "--project", ids.acmeProject, "--buildkite", "acme/deploy", "--jwks-file", jwks],
      admin,
    );
    expect(bk).toMatchObject({ provider: "buildkite", static_jwks: true });

    const list = await json<{ id: string; provider: string }[]>(["trust", "list", "--project", ids.acmeProject], admin);
    expect(list.map((t) => t.provider)).toEqual(["github", "generic", "buildkite"]);
    const human = await cli(["trust", "list", "--project", ids.acmeProject], admin);
    expect(human.stdout).toContain("repository acme/app");
    expect(human.stdout).toContain("sub=repo:acme/* ref=main");

    expect(await json(["trust", "remove", gh.id], admin)).toEqual({ id: gh.id, removed: true });
    expect(
      (await json<{ id: string }[]>(["trust", "list", "--project", ids.acmeProject], admin)).map((t) => t.id),
    ).toEqual([generic.id, bk.id]);
    failed(await cli(["trust", "remove", gh.id], admin), 1, /Not found/);
    failed(
      await cli(["trust", "add", "--project", ids.acmeProject, "--github", "acme/app", "--buildkite", "a/b"], admin),
      2,
      /not --github and --buildkite/,
    );
    failed(
      await cli(["trust", "add", "--project", ids.acmeProject, "--issuer", "https://ci.example.com"], admin),
      2,
      /trust add needs one of/,
    );
    failed(
      await cli(["trust", "add", "--project", ids.acmeProject, "--circleci", "not-a-uuid/x"], admin),
      1,
      /Invalid input: .*organizationId: must be a UUID/,
    );
  });

  test("a GitHub trust pinned by immutable ids, ref and environment", async () => {
    const admin = await adminEnv();
    const ids = await projectIds();
    const pinned = await json(
      [
        "trust",
        "add",
        "--project",
        ids.acmeProject,
        "--github",
        "acme/app",
        "--repository-id",
        "424242",
        "--owner-id",
        "1000001",
        "--ref",
        "refs/heads/main",
        "--environment",
        "prod",
      ],
      admin,
    );
    expect(pinned).toMatchObject({
      provider: "github",
      config: {
        owner: "acme",
        repository: "acme/app",
        repositoryId: "424242",
        repositoryOwnerId: "1000001",
        ref: "refs/heads/main",
        environment: "prod",
      },
    });
    expect((await cli(["trust", "list", "--project", ids.acmeProject], admin)).stdout).toContain(
      "repository acme/app id 424242 owner id 1000001 ref refs/heads/main environment prod",
    );
    failed(
      await cli(
        ["trust", "add", "--project", ids.acmeProject, "--github", "acme/app", "--repository-id", "acme"],
        admin,
      ),
      1,
      /repositoryId: must be GitHub's numeric repository_id/,
    );
    failed(
      await cli(
        ["trust", "add", "--project", ids.acmeProject, "--buildkite", "acme/deploy", "--ref", "refs/heads/main"],
        admin,
      ),
      2,
      /pin a --github trust/,
    );
  });
});

describe("device login", () => {
  /** Runs `login` and answers its device code with `approve`; returns the result. */
  async function deviceLogin(
    env: Env,
    args: string[],
    approve: (userCode: string) => Promise<void>,
  ): Promise<CommandResult> {
    const proc = Bun.spawn([bin, "login", ...args, "--device", "--json"], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "", ...env },
    });
    let stderr = "";
    const decoder = new TextDecoder();
    const reader = proc.stderr.getReader();
    let code: string | undefined;
    while (!code) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += decoder.decode(value);
      code = /approve the code (\S+)/.exec(stderr)?.[1];
    }
    if (code) await approve(code);
    const rest = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        stderr += decoder.decode(value);
      }
    })();
    const [stdout, exit] = await Promise.all([new Response(proc.stdout).text(), proc.exited, rest]);
    return { code: exit, stdout, stderr };
  }

  test("against the server: approve the code, the token is saved with its id; logout revokes it", async () => {
    const h = newHome();
    const r = await deviceLogin(h.env, ["--server", server.url, "--cacert", caFile], async (userCode) => {
      const a = await server.get("/api/v1/auth/device/approve", {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ user_code: userCode }),
      });
      expect(a.status).toBeLessThan(300);
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("/device");
    expect(JSON.parse(r.stdout)).toMatchObject({ username: "admin", token_id: expect.stringMatching(/^tok_/) });
    const saved = JSON.parse(readFileSync(h.config, "utf8")) as Record<string, string>;
    const { token, token_id } = saved; // (toMatchObject's matchers replace the values they match)
    secrets.push(token!);
    expect(token).toMatch(/^slw_u_/);
    expect(token_id).toMatch(/^tok_/);
    expect(saved).toMatchObject({ server: server.url, cacert_pem: caPem });
    expect(statSync(h.config).mode & 0o777).toBe(0o600);
    expect((await me(token!)).status).toBe(200);
    expect(await json(["logout"], h.env)).toMatchObject({ logged_out: true, revoked: true });
    expect((await me(token!)).status).toBe(401);
    expect(JSON.parse(readFileSync(h.config, "utf8")).token).toBeUndefined();
  });

  test("against a scripted server: pending, slow down, approved; then logout revokes by id; an expired code exits 1", async () => {
    const calls: string[] = [];
    let polls = 0;
    let expire = false;
    const token = `slw_u_${"D".repeat(33)}`;
    const fake = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(req): Promise<Response> {
        const base = new URL(req.url).origin;
        const path = new URL(req.url).pathname;
        calls.push(`${req.method} ${path}`);
        const body = req.method === "POST" ? ((await req.json()) as Record<string, string>) : {};
        if (path === "/api/v1/auth/device") {
          expect(body.client_name).toContain("slipway");
          return Response.json({
            device_code: expire ? "gone" : "dev-secret",
            user_code: "BCDF-GHJK",
            verification_uri: `${base}/device`,
            verification_uri_complete: `${base}/device?code=BCDF-GHJK`,
            expires_in: 600,
            interval: 1,
          });
        }
        if (path === "/api/v1/auth/device/token") {
          if (body.device_code === "gone")
            return Response.json(
              {
                title: "Gone",
                status: 410,
                detail: "this device login has expired, was denied or was already used; run 'slipway login' again",
              },
              { status: 410, headers: { "content-type": "application/problem+json" } },
            );
          polls++;
          if (polls === 1) return Response.json({ status: "pending" }, { status: 202 });
          if (polls === 2)
            return Response.json({ title: "Too many requests", status: 429, detail: "slow down" }, { status: 429 });
          return Response.json({ status: "approved", token, token_id: "tok_device" });
        }
        if (path === "/api/v1/me") {
          if (req.headers.get("authorization") !== `Bearer ${token}`)
            return Response.json({ title: "Authentication required", status: 401 }, { status: 401 });
          return Response.json({ id: "usr_dev", username: "dev", is_admin: false });
        }
        if (req.method === "DELETE" && path === "/api/v1/tokens/tok_device")
          return Response.json({ id: "tok_device", revoked_at: new Date().toISOString() });
        return Response.json({ title: "Not found", status: 404 }, { status: 404 });
      },
    });
    try {
      const h = newHome();
      const url = fake.url.origin;
      const r = await deviceLogin(h.env, ["--server", url], async () => {});
      expect(r.code).toBe(0);
      // The bare address and the code to type; never a link with the code filled in (which the
      // scripted server still offers as verification_uri_complete).
      expect(r.stderr).toContain(`  ${url}/device\nand approve the code BCDF-GHJK`);
      expect(r.stderr).not.toContain("?code=");
      expect(JSON.parse(r.stdout)).toMatchObject({ server: url, username: "dev", token_id: "tok_device" });
      expect(polls).toBe(3);
      expect(JSON.parse(readFileSync(h.config, "utf8"))).toMatchObject({ server: url, token, token_id: "tok_device" });
      expect(await json(["logout"], h.env)).toMatchObject({ logged_out: true, revoked: true });
      expect(calls).toContain("DELETE /api/v1/tokens/tok_device");
      expect(await json(["logout"], h.env)).toMatchObject({ logged_out: false }); // idempotent

      // The server says the code is gone (expired, denied, used): exit 1 with its message.
      expire = true;
      const gone = newHome();
      failed(
        await cli(["login", "--server", url, "--device"], gone.env),
        1,
        /Gone: this device login has expired, was denied or was already used/,
      );
      // Without a terminal and without --device, login refuses rather than wait for a browser.
      failed(await cli(["login", "--server", url], gone.env), 2, /no terminal for a device login/);
      expect(existsSync(gone.config)).toBe(false);
    } finally {
      fake.stop(true);
    }
  });
});

describe("logout and recovery", () => {
  test("logout removes the token but keeps server and CA; it is idempotent", async () => {
    const env = await adminHome();
    const h = join(env.XDG_CONFIG_HOME!, "slipway", "client.json");
    const r = await cli(["logout"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`logged out of ${server.url}`);
    const saved = JSON.parse(readFileSync(h, "utf8"));
    expect(saved.token).toBeUndefined();
    expect(saved).toMatchObject({ server: server.url, cacert_pem: caPem });
    expect(statSync(h).mode & 0o777).toBe(0o600);
    failed(await cli(["orgs", "list"], env), 2, /not logged in/);
    expect((await cli(["logout"], env)).code).toBe(0);
    expect((await me(adminToken)).status).toBe(200); // a token given to login --token is not revoked
  });

  test("admin reset-token prints a fresh token for the user that authenticates", async () => {
    await bob();
    const { id, token } = await json(["admin", "reset-token", "--username", "admin", "--data-dir", server.dataDir], {});
    secrets.push(token);
    expect(id).toMatch(/^tok_/);
    expect(await (await me(token)).json()).toMatchObject({ username: "admin", is_admin: true });
    const human = await cli(["admin", "reset-token", "--username", "bob", "--data-dir", server.dataDir], {});
    expect(human.code).toBe(0);
    const bobToken = human.stdout.trim();
    secrets.push(bobToken);
    expect(await (await me(bobToken)).json()).toMatchObject({ username: "bob" });
    failed(
      await cli(["admin", "reset-token", "--username", "nobody", "--data-dir", server.dataDir], {}),
      1,
      /no such user: nobody/,
    );
    // Logged in with it, the recovered administrator manages tokens again.
    const h = newHome();
    await json(["login", "--server", server.url, "--token", token, "--cacert", caFile], h.env);
    expect((await json<{ name: string }[]>(["tokens", "list"], h.env)).map((t) => t.name)).toContain("reset-token");
  });

  test("the server's log never contains a secret any command produced", async () => {
    // Secrets of its own (a token made through the API, one reset offline), beside those the
    // tests before it collected.
    const made = await json(["tokens", "create", "--name", "log-check"], await adminEnv());
    secrets.push(made.token);
    secrets.push((await json(["admin", "reset-token", "--username", "admin", "--data-dir", server.dataDir], {})).token);
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    const logs = server.logs();
    expect(logs.length).toBeGreaterThan(0);
    for (const s of secrets) expect(logs).not.toContain(s);
  });
});
