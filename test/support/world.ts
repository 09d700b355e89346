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
import { authServiceFactory, bootstrapAdministrator } from "../../src/auth/index.ts";
import { sessionsServiceFactory } from "../../src/auth/sessions.ts";
import { tokensServiceFactory } from "../../src/auth/token-service.ts";
import { trustServiceFactory } from "../../src/auth/trust-service.ts";
import { deviceLoginServiceFactory } from "../../src/auth/device-login.ts";
import { ciTokenVerifierFactory, oidcKeysFactory, parseAllowInternal } from "../../src/auth/oidc/index.ts";

/** The audience trusts accept by default in this world (the appliance's "public URL"). */
export const WORLD_AUDIENCE = "https://slipway.example.com";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { HealthRegistry } from "../../src/health/registry.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { MetricsRegistry } from "../../src/metrics/registry.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { projectsServiceFactory } from "../../src/projects/service.ts";
import { quotasServiceFactory } from "../../src/orgs/quotas.ts";
import { readFileSync } from "node:fs";
import { identityContext } from "../../src/api/identity.ts";
import { registryRoutes } from "../../src/api/routes/registry.ts";
import { registryServiceFactory } from "../../src/registry/index.ts";
import { createSealer } from "../../src/secrets/index.ts";
import { egressServiceFactory } from "../../src/egress/service.ts";

export const ACTOR_NAMES = ["anon", "admin", "ownerA", "userA", "ownerB", "userB", "tokA1", "tokA2", "orgTokB", "oidcA1", "expired", "revoked"] as const;
export type ActorName = (typeof ACTOR_NAMES)[number];

/** `oidcAllowInternal`: the operator's oidc.allow_internal; by default loopback, where the tests' issuers listen. */
export async function makeWorld(opts: { https?: boolean; oidcAllowInternal?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "slipway-world-"));
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const boot = bootstrapAdministrator(db, dir);
  const audit = auditServiceFactory({ db });
  const auth = authServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  const quotas = quotasServiceFactory({ db, audit, defaults: { max_projects: 100, max_builder_cpus: 16, max_builder_memory_mb: 32768, max_cache_size_gb: 200, max_running_builders: 8 } });
  const projects = projectsServiceFactory({ db, audit, quotas });
  const tokens = tokensServiceFactory({ db, audit });
  const sessions = sessionsServiceFactory({ db, audit });
  const allowInternal = parseAllowInternal(opts.oidcAllowInternal ?? "127.0.0.0/8");
  const trust = trustServiceFactory({ db, audit, tokens, allowInternal, verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ allowInternal }) }) });
  const admin = "system:test";

  const users: Record<string, string> = {};
  const secrets: Partial<Record<ActorName, string>> = { admin: readFileSync(boot.tokenFile, "utf8").trim() };
  for (const name of ["ownerA", "userA", "ownerB", "userB"] as const) {
    const u = orgs.createUser({ username: name }, admin);
    users[name] = u.id;
    secrets[name] = tokens.create({ kind: "user", name: "t", expiresAt: null, userId: u.id, createdBy: u.id }, admin).token;
  }
  const system = { kind: "user" as const, userId: users.ownerA!, username: "ownerA", isAdmin: false, tokenId: null, memberships: {} };
  const A = orgs.create({ slug: "org-a", name: "A", owner: "ownerA" }, system);
  const B = orgs.create({ slug: "org-b", name: "B", owner: "ownerB" }, system);
  orgs.addMember(A.id, "userA", "user", system);
  orgs.addMember(B.id, "userB", "user", system);
  const p1 = projects.create(A.id, { name: "p1" }, system);
  const p2 = projects.create(A.id, { name: "p2" }, system);
  const q1 = projects.create(B.id, { name: "q1" }, system);

  const make = (input: Parameters<typeof tokens.create>[0]) => tokens.create(input, admin);
  const tA1 = make({ kind: "project", name: "a1", expiresAt: null, orgId: A.id, projectId: p1.id, createdBy: null });
  const tA2 = make({ kind: "project", name: "a2", expiresAt: null, orgId: A.id, projectId: p2.id, createdBy: null });
  const tB = make({ kind: "org", name: "b", expiresAt: null, orgId: B.id, createdBy: null });
  const tO = make({ kind: "oidc", name: "ci", expiresAt: new Date(Date.now() + 3_600_000), projectIds: [p1.id], createdBy: null });
  const tExpired = make({ kind: "user", name: "old", expiresAt: new Date(Date.now() + 60_000), userId: users.ownerA!, createdBy: null });
  db.query("UPDATE api_tokens SET expires_at = ? WHERE id = ?").run(new Date(Date.now() - 1000).toISOString(), tExpired.metadata.id);
  const tRevoked = make({ kind: "user", name: "gone", expiresAt: null, userId: users.ownerA!, createdBy: null });
  db.query("UPDATE api_tokens SET revoked_at = ? WHERE id = ?").run(new Date().toISOString(), tRevoked.metadata.id);
  Object.assign(secrets, { tokA1: tA1.token, tokA2: tA2.token, orgTokB: tB.token, oidcA1: tO.token, expired: tExpired.token, revoked: tRevoked.token });

  const ownerAToken = tokens.listForUser(users.ownerA!).find((t) => t.name === "t")!;
  const egress = egressServiceFactory({ db, audit, applianceHosts: ["localhost"], extraAllow: [] });
  const hostA = egress.addHost(A.id, { name: "ci-a", scopes: ["docker:ci"] }, system).host;
  const identity = { auth, audit, sessions, orgs, projects, quotas, tokens, trust, deviceLogins: deviceLoginServiceFactory({ db, audit, tokens }), publicUrl: WORLD_AUDIENCE, egress };
  const ctx = identityContext(identity, () => "192.0.2.1");
  // The registry's routes, its process absent (no binary): who may read and set what is the point.
  const registry = registryServiceFactory({
    db,
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
    plugins: [registryRoutes({ ctx, registry })],
  });

  return {
    db,
    ids: { A: A.id, B: B.id, p1: p1.id, p2: p2.id, q1: q1.id, tokA2: tA2.metadata.id, ownerAToken: ownerAToken.id, userA: users.userA!, userB: users.userB!, hostA: hostA.id },
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
      return app.handle(new Request(`http://localhost${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }));
    },
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
export type World = Awaited<ReturnType<typeof makeWorld>>;
