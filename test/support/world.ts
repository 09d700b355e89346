/**
 * @module test/support/world
 * A populated appliance for authorization tests, in-process on a real SQLite file: two
 * organizations with owners and users, projects, and one credential of every kind — including
 * an OIDC-exchanged token and expired and revoked ones.
 *
 *   A (owner ownerA, user userA): projects p1, p2     B (owner ownerB, user userB): project q1
 *   A has an egress runner host (hostA).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import { authServiceFactory } from "../../src/auth/index.ts";
import { bootstrapAdministrator } from "../../src/orgs/bootstrap.ts";
import { sessionsServiceFactory } from "../../src/auth/sessions.ts";
import { tokensServiceFactory, type TokensService } from "../../src/auth/api-tokens.ts";
import { trustServiceFactory } from "../../src/auth/ci-trusts.ts";
import { deviceLoginServiceFactory } from "../../src/auth/device-login.ts";
import { ciTokenVerifierFactory, oidcKeysFactory, parseAllowInternal } from "../../src/auth/oidc/index.ts";

/** The audience trusts accept by default in this world (the appliance's "public URL"). */
export const WORLD_AUDIENCE = "https://slipway.example.com";
import type { Database } from "bun:sqlite";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { HealthRegistry } from "../../src/health/registry.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { MetricsRegistry } from "../../src/metrics/registry.ts";
import { orgsServiceFactory, type OrgsService } from "../../src/orgs/service.ts";
import { projectsServiceFactory, type ProjectsService } from "../../src/projects/service.ts";
import { quotasServiceFactory, quotaUsageOf } from "../../src/orgs/quotas.ts";
import { readFileSync } from "node:fs";
import { identityContext } from "../../src/api/identity.ts";
import { registryServiceFactory } from "../../src/registry/index.ts";
import { createSealer } from "../../src/secrets/index.ts";
import { egressServiceFactory } from "../../src/egress/service.ts";

/**
 * The tenants both worlds share: users ownerA, userA, ownerB, userB (each with a user token),
 * organizations A and B, projects p1, p2 (A) and q1 (B), and an expired and a revoked user token.
 */
function seedTenants(
  svc: { db: Database; orgs: OrgsService; projects: ProjectsService; tokens: TokensService },
  admin: string,
) {
  const { db, orgs, projects, tokens } = svc;
  const users: Record<string, string> = {};
  const userTokens: Record<string, string> = {};
  for (const name of ["ownerA", "userA", "ownerB", "userB"] as const) {
    const u = orgs.createUser({ username: name }, admin);
    users[name] = u.id;
    userTokens[name] = tokens.create(
      { kind: "user", name: "t", expiresAt: null, userId: u.id, createdBy: u.id },
      admin,
    ).token;
  }
  const system = {
    kind: "user" as const,
    userId: users.ownerA!,
    username: "ownerA",
    isAdmin: false,
    tokenId: null,
    memberships: {},
  };
  const A = orgs.create({ slug: "org-a", name: "A", owner: "ownerA" }, system);
  const B = orgs.create({ slug: "org-b", name: "B", owner: "ownerB" }, system);
  orgs.addMember(A.id, "userA", "user", system);
  orgs.addMember(B.id, "userB", "user", system);
  const p1 = projects.create(A.id, { name: "p1" }, system);
  const p2 = projects.create(A.id, { name: "p2" }, system);
  const q1 = projects.create(B.id, { name: "q1" }, system);
  const make = (input: Parameters<typeof tokens.create>[0]) => tokens.create(input, admin);
  const expired = make({
    kind: "user",
    name: "old",
    expiresAt: new Date(Date.now() + 60_000),
    userId: users.ownerA!,
    createdBy: null,
  });
  db.query("UPDATE api_tokens SET expires_at = ? WHERE id = ?").run(
    new Date(Date.now() - 1000).toISOString(),
    expired.metadata.id,
  );
  const revoked = make({ kind: "user", name: "gone", expiresAt: null, userId: users.ownerA!, createdBy: null });
  db.query("UPDATE api_tokens SET revoked_at = ? WHERE id = ?").run(new Date().toISOString(), revoked.metadata.id);
  return { users, userTokens, system, A, B, p1, p2, q1, make, expired, revoked };
}

export const ACTOR_NAMES = [
  "anon",
  "admin",
  "ownerA",
  "userA",
  "ownerB",
  "userB",
  "tokA1",
  "tokA2",
  "orgTokB",
  "oidcA1",
  "expired",
  "revoked",
] as const;
export type ActorName = (typeof ACTOR_NAMES)[number];

/** `oidcAllowInternal`: the operator's oidc.allow_internal; by default loopback, where the tests' issuers listen. */
export async function makeWorld(opts: { https?: boolean; oidcAllowInternal?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "slipway-world-"));
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const boot = bootstrapAdministrator(db, dir);
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  const quotas = quotasServiceFactory({
    db,
    audit,
    defaults: {
      max_projects: 100,
      max_builder_cpus: 16,
      max_builder_memory_mb: 32768,
      max_cache_size_gb: 200,
      max_running_builders: 8,
    },
    usage: quotaUsageOf(() => ({ projects })),
  });
  const projects = projectsServiceFactory({ db, audit, quotas, orgs });
  const tokens = tokensServiceFactory({ db, audit });
  const sessions = sessionsServiceFactory({ db, audit, users: orgs });
  const allowInternal = parseAllowInternal(opts.oidcAllowInternal ?? "127.0.0.0/8");
  const trust = trustServiceFactory({
    db,
    audit,
    tokens,
    projects,
    allowInternal,
    verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ allowInternal }) }),
  });
  const admin = "system:test";

  const secrets: Partial<Record<ActorName, string>> = { admin: readFileSync(boot.tokenFile, "utf8").trim() };
  const {
    users,
    userTokens,
    system,
    A,
    B,
    p1,
    p2,
    q1,
    make,
    expired: tExpired,
    revoked: tRevoked,
  } = seedTenants({ db, orgs, projects, tokens }, admin);
  Object.assign(secrets, userTokens);
  const tA1 = make({ kind: "project", name: "a1", expiresAt: null, orgId: A.id, projectId: p1.id, createdBy: null });
  const tA2 = make({ kind: "project", name: "a2", expiresAt: null, orgId: A.id, projectId: p2.id, createdBy: null });
  const tB = make({ kind: "org", name: "b", expiresAt: null, orgId: B.id, createdBy: null });
  const tO = make({
    kind: "oidc",
    name: "ci",
    expiresAt: new Date(Date.now() + 3_600_000),
    projectIds: [p1.id],
    createdBy: null,
  });
  Object.assign(secrets, {
    tokA1: tA1.token,
    tokA2: tA2.token,
    orgTokB: tB.token,
    oidcA1: tO.token,
    expired: tExpired.token,
    revoked: tRevoked.token,
  });

  const ownerAToken = tokens.listForUser(users.ownerA!).find((t) => t.name === "t")!;
  const egress = egressServiceFactory({ db, audit, applianceHosts: ["localhost"], extraAllow: [] });
  const hostA = egress.addHost(A.id, { name: "ci-a", scopes: ["docker:ci"] }, system).host;
  const auth = authServiceFactory({ tokens, users: orgs, projects, runnerHosts: egress });
  const identity = {
    auth,
    audit,
    sessions,
    orgs,
    projects,
    quotas,
    tokens,
    trust,
    deviceLogins: deviceLoginServiceFactory({ db, audit, tokens }),
    publicUrl: WORLD_AUDIENCE,
    egress,
  };
  const ctx = identityContext(identity, () => "192.0.2.1");
  // The registry's routes, its process absent (no binary): who may read and set what is the point.
  const registry = registryServiceFactory({
    db,
    projects,
    builds: { find: () => null }, // no builds in this world: no image links to one
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    log: silentLogger,
    dataDir: dir,
    settings: { enabled: true, binary: join(dir, "no-registry-here"), retention_days: 7, gc_interval_hours: 0 },
    publicHost: "localhost:8443",
    builderHost: "registry.slipway.internal:8443",
    actorOf: (r) => ctx.actorOf(r),
  });
  await registry.start();
  const app = createApp({
    log: silentLogger,
    health: new HealthRegistry(),
    metrics: new MetricsRegistry(),
    auth,
    version: "test",
    options: { maxBodyBytes: 1 << 20, hstsMaxAgeSeconds: opts.https ? 600 : null, metricsBearerToken: null },
    clientAddress: () => "192.0.2.1",
    identity,
    registry,
  });

  return {
    db,
    ids: {
      A: A.id,
      B: B.id,
      p1: p1.id,
      p2: p2.id,
      q1: q1.id,
      tokA2: tA2.metadata.id,
      ownerAToken: ownerAToken.id,
      userA: users.userA!,
      userB: users.userB!,
      hostA: hostA.id,
    },
    secrets,
    audit,
    sessions,
    /** The app's own handler, for requests the helpers below do not cover. */
    handle: (req: Request) => app.handle(req),
    /** Calls the app as `actor`. */
    call(actor: ActorName, method: string, path: string, body?: unknown): Promise<Response> {
      const headers: Record<string, string> = {};
      if (actor !== "anon") headers.authorization = `Bearer ${secrets[actor]}`;
      if (body !== undefined) headers["content-type"] = "application/json";
      return app.handle(
        new Request(`http://localhost${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
      );
    },
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
export type World = Awaited<ReturnType<typeof makeWorld>>;

// ---------------------------------------------------------------------------------------------
// The appliance itself: what `slipway serve` builds, in this process, populated with one actor of
// every kind. The authorization matrix and the bad-input sweep take their route list from it.

/** Every kind of caller the appliance accepts, once each (columns of the authorization matrix). */
export const APPLIANCE_ACTORS = [
  "anon", // no credentials
  "admin", // the administrator's user token
  "ownerA", // owner of organization A (a user token)
  "userA", // member (role user) of A (a user token)
  "ownerB", // owner of organization B (a user token): everything of A is foreign to it
  "projTok", // project token of p1 (A)
  "orgTok", // organization token of A
  "agent", // agent token of A's runner host hostA
  "build", // build token of build b1 (on p1, started by projTok)
  "ciJwt", // a raw CI OIDC JWT trusted by p1 (GitHub acme/app)
  "oidcTok", // a token exchanged from CI OIDC, bound to p1
  "session", // ownerA's web session cookie (same-origin)
  "expired", // ownerA's expired user token
  "revoked", // ownerA's revoked user token
] as const;
export type ApplianceActor = (typeof APPLIANCE_ACTORS)[number];

/** A table digest's columns to leave out: advisory timestamps that authentication itself writes. */
const ADVISORY_COLUMNS = new Set(["last_used_at", "last_seen_at", "last_poll_at"]);

export async function startApplianceWorld() {
  const { loadConfig } = await import("../../src/config/index.ts");
  const { startAppliance } = await import("../../src/appliance/runtime.ts");
  const { freePorts } = await import("./serve.ts");
  const { startTestIssuer, githubClaims } = await import("./oidc-issuer.ts");
  const { SESSION_COOKIE } = await import("../../src/auth/sessions.ts");
  const { METHODS } = await import("../../src/wire/depot.ts");

  const dir = mkdtempSync(join(tmpdir(), "slipway-appliance-world-"));
  const [apiPort, buildPort] = await freePorts(2);
  const loaded = loadConfig({
    uid: 1000,
    env: { HOME: dir },
    overrides: [
      { key: "data.dir", value: join(dir, "data"), source: "test" },
      { key: "server.listen", value: `127.0.0.1:${apiPort}`, source: "test" },
      { key: "server.build_listen", value: `127.0.0.1:${buildPort}`, source: "test" },
      // No Docker engine and no firewall changes: who may call what is the point, not builders.
      { key: "builders.docker_socket", value: join(dir, "no-docker.sock"), source: "test" },
      { key: "builders.network_policy", value: "off", source: "test" },
      // The registry's routes are mounted; its process is absent (answers 503 where it is needed).
      { key: "registry.binary", value: join(dir, "no-registry-here"), source: "test" },
      { key: "oidc.allow_internal", value: "127.0.0.0/8", source: "test" },
      // The world's build stays active for the whole run (the sweeper expires silent builds).
      { key: "builds.health_timeout_seconds", value: 3600, source: "test" },
    ],
  });
  const appliance = await startAppliance({ loaded, log: silentLogger, env: {}, plugins: [] });
  const ca = readFileSync(appliance.state.caFile, "utf8");
  const db = appliance.state.db;
  const issuer = await startTestIssuer();
  try {
    const audit = auditServiceFactory({ db });
    const orgs = orgsServiceFactory({ db, audit });
    const quotas = quotasServiceFactory({
      db,
      audit,
      defaults: loaded.config.quotas,
      usage: quotaUsageOf(() => ({ projects })),
    });
    const projects = projectsServiceFactory({ db, audit, quotas, orgs });
    const tokens = tokensServiceFactory({ db, audit });
    const sessions = sessionsServiceFactory({ db, audit, users: orgs });
    const allowInternal = parseAllowInternal("127.0.0.0/8");
    const trust = trustServiceFactory({
      db,
      audit,
      tokens,
      projects,
      allowInternal,
      verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ allowInternal }) }),
    });
    const egress = egressServiceFactory({ db, audit, applianceHosts: ["localhost"], extraAllow: [] });
    const deviceLogins = deviceLoginServiceFactory({ db, audit, tokens });
    const admin = "system:test";
    const secrets: Partial<Record<ApplianceActor, string>> = {
      admin: readFileSync(join(loaded.dataDir, "initial-admin-token"), "utf8").trim(),
    };

    const { users, userTokens, system, A, B, p1, p2, q1, make, expired, revoked } = seedTenants(
      { db, orgs, projects, tokens },
      admin,
    );
    Object.assign(secrets, { ownerA: userTokens.ownerA, userA: userTokens.userA, ownerB: userTokens.ownerB });
    const projTok = make({
      kind: "project",
      name: "p1",
      expiresAt: null,
      orgId: A.id,
      projectId: p1.id,
      createdBy: null,
    });
    const tokA2 = make({
      kind: "project",
      name: "p2",
      expiresAt: null,
      orgId: A.id,
      projectId: p2.id,
      createdBy: null,
    });
    const orgTok = make({ kind: "org", name: "a", expiresAt: null, orgId: A.id, createdBy: null });
    const orgTokB = make({ kind: "org", name: "b", expiresAt: null, orgId: B.id, createdBy: null });
    const oidcTok = make({
      kind: "oidc",
      name: "ci",
      expiresAt: new Date(Date.now() + 3_600_000),
      projectIds: [p1.id],
      createdBy: null,
    });
    const ownerAToken = tokens.listForUser(users.ownerA!).find((t) => t.name === "t")!;
    Object.assign(secrets, {
      projTok: projTok.token,
      orgTok: orgTok.token,
      oidcTok: oidcTok.token,
      expired: expired.token,
      revoked: revoked.token,
    });

    const hostA = egress.addHost(A.id, { name: "ci-a", scopes: ["docker:ci"] }, system);
    const hostB = egress.addHost(B.id, { name: "ci-b", scopes: ["host"] }, system);
    secrets.agent = hostA.token;
    const ruleA = egress.addRule(A.id, { action: "allow", target: "198.51.100.7" }, system);
    const trustA = trust.create(
      p1.id,
      A.id,
      {
        provider: "github",
        issuer: issuer.issuer,
        owner: "acme",
        repository: "acme/app",
        audiences: [appliance.publicUrl],
      },
      system,
    );
    const mintCiJwt = () =>
      issuer.mint(
        githubClaims(issuer.issuer, Math.floor(Date.now() / 1000), {
          aud: appliance.publicUrl,
          exp: Math.floor(Date.now() / 1000) + 3600,
        }),
      );
    secrets.ciJwt = await mintCiJwt();

    await sessions.setPassword(users.ownerA!, "a long passphrase for the matrix");
    const session = await sessions.login("ownerA", "a long passphrase for the matrix", {
      ip: "127.0.0.1",
      userAgent: "matrix",
    });
    secrets.session = session.secret;
    const origin = new URL(appliance.localUrl).origin;

    // A device login waiting for approval, and one approved (FinishLogin answers at once).
    const pendingLogin = deviceLogins.start(
      { clientName: "matrix", ip: "192.0.2.9", userAgent: null },
      appliance.publicUrl,
    );
    const approvedLogin = deviceLogins.start(
      { clientName: "matrix", ip: "192.0.2.9", userAgent: null },
      appliance.publicUrl,
    );
    deviceLogins.approve(approvedLogin.user_code, { ...system, memberships: { [A.id]: "owner" } }, null);

    const call = (
      actor: ApplianceActor,
      method: string,
      path: string,
      body?: string | Uint8Array | null,
      contentType?: string,
    ): Promise<Response> => {
      const headers: Record<string, string> = {};
      if (actor === "session") {
        headers.cookie = `${SESSION_COOKIE}=${secrets.session}`;
        headers.origin = origin; // the web UI's own pages
      } else if (actor !== "anon") headers.authorization = `Bearer ${secrets[actor]}`;
      if (body !== undefined && body !== null) headers["content-type"] = contentType ?? "application/json";
      return fetch(`${appliance.localUrl}${path}`, {
        method,
        headers,
        body: body ?? undefined,
        tls: { ca },
        keepalive: false,
      } as RequestInit);
    };

    // The build token: a real CreateBuild by the project token.
    const created = await call("projTok", "POST", METHODS.createBuild.path, JSON.stringify({ projectId: p1.id }));
    if (created.status !== 200) throw new Error(`CreateBuild for the world: ${created.status} ${await created.text()}`);
    const b1 = (await created.json()) as { buildId: string; buildToken: string };
    secrets.build = b1.buildToken;

    return {
      appliance,
      db,
      ca,
      issuer,
      /** Every route the appliance mounted (REST and Connect). */
      routes: appliance.routes,
      ids: {
        A: A.id,
        B: B.id,
        p1: p1.id,
        p2: p2.id,
        q1: q1.id,
        b1: b1.buildId,
        tokA2: tokA2.metadata.id,
        orgTokB: orgTokB.metadata.id,
        ownerAToken: ownerAToken.id,
        hostA: hostA.host.id,
        hostB: hostB.host.id,
        ruleA: ruleA.id,
        trustA: trustA.id,
        sessionA: session.session.id,
        pendingUserCode: pendingLogin.user_code,
        approvedDeviceCode: approvedLogin.device_code,
        /** The raw CI JWT (also the ciJwt actor's credential). */
        ciJwt: secrets.ciJwt,
        pendingDeviceCode: pendingLogin.device_code,
      },
      secrets,
      mintCiJwt,
      call,
      /** A digest of every table's rows (audit_log aside: refusals are audited; advisory timestamps aside). */
      digest(): string {
        const tables = (
          db
            .query(
              "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'audit_log' ORDER BY name",
            )
            .all() as { name: string }[]
        ).map((t) => t.name);
        const h = new Bun.CryptoHasher("sha256");
        for (const t of tables) {
          const cols = (db.query(`SELECT name FROM pragma_table_info('${t}') ORDER BY cid`).all() as { name: string }[])
            .map((c) => c.name)
            .filter((c) => !ADVISORY_COLUMNS.has(c));
          const rows = db.query(`SELECT ${cols.map((c) => `"${c}"`).join(", ")} FROM "${t}"`).values();
          h.update(
            `${t}\n${rows
              .map((r) =>
                JSON.stringify(r, (_k, v) =>
                  typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v,
                ),
              )
              .sort()
              .join("\n")}\n`,
          );
        }
        return h.digest("hex");
      },
      /** Runs `fn` and then undoes every row it wrote (a savepoint on the appliance's own
       * connection): a successful write in one cell cannot change what the next cell sees. */
      async isolated<T>(fn: () => Promise<T>): Promise<T> {
        db.run("SAVEPOINT matrix_cell");
        try {
          return await fn();
        } finally {
          db.run("ROLLBACK TO matrix_cell");
          db.run("RELEASE matrix_cell");
        }
      },
      async close() {
        await appliance.stop();
        await issuer.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await appliance.stop();
    await issuer.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
export type ApplianceWorld = Awaited<ReturnType<typeof startApplianceWorld>>;
