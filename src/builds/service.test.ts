/**
 * The build lifecycle on a real SQLite file and the real CA, with a narrow fake builder manager
 * (the real one is exercised in test/e2e/builders.test.ts and build-flow.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { NotFoundError, PreconditionError, UnavailableError } from "../errors.ts";
import { silentLogger } from "../log/logger.ts";
import { pkiServiceFactory } from "../pki/index.ts";
import { createSealer } from "../secrets/index.ts";
import { buildsServiceFactory, type BuildsService } from "./service.ts";

let dir: string;
let db: Database;
let builds: BuildsService;
let clock = Date.parse("2026-11-22T10:00:00Z");
const ended: string[] = [];
const released: string[] = [];
let builderState: "starting" | "ready" = "starting";
const ORG = "org_a";
const PRJ = "prj_a";
const token: Actor = { kind: "project-token", tokenId: "tok_1", orgId: ORG, projectId: PRJ };
const other: Actor = { kind: "project-token", tokenId: "tok_2", orgId: "org_b", projectId: "prj_b" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-builds-"));
  db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  for (const [o, p] of [[ORG, PRJ], ["org_b", "prj_b"]] as [string, string][]) {
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)").run(o, o.replace("_", "-"), o, new Date().toISOString());
    db.query("INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'p', 600, ?)").run(p, o, new Date().toISOString());
  }
  const pki = pkiServiceFactory({ db, sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))), applianceId: "test" });
  await pki.ensureHierarchy(["server", "build-client"]);
  builds = buildsServiceFactory({
    db,
    pki,
    builders: {
      request: async (ref) => (builderState === "ready" ? { state: "ready", builder: { builderId: `b-${ref.platform}`, projectId: ref.projectId, platform: ref.platform, runtime: "dockerd", socketPath: `/run/${ref.platform}.sock`, emulated: false } } : { state: "starting" }),
      release: (h) => released.push(h),
      ready: (ref) => (builderState === "ready" ? { socketPath: `/run/${ref.platform.replace("/", "-")}.sock`, runtime: "dockerd", platform: ref.platform } : null),
    },
    router: { buildEnded: (id) => ended.push(id) },
    audit: auditServiceFactory({ db }),
    log: silentLogger,
    publicUrl: "https://slipway.test:8443",
    buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
    healthTimeoutMs: 60_000,
    logMaxBytes: 64,
    cancelGraceMs: 15_000,
    now: () => new Date(clock),
  });
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("builds", () => {
  test("a project is named by id or as ORG/NAME; a missing or foreign one answers the same 404, for an administrator too", () => {
    const admin: Actor = { kind: "user", userId: "usr_admin", username: "admin", isAdmin: true, tokenId: null, memberships: {} };
    const byName = builds.create(token, "org-a/p", []).build;
    const byAdmin = builds.create(admin, "org-b/p", []).build;
    expect([byName.project_id, byAdmin.project_id]).toEqual([PRJ, "prj_b"]);
    builds.finish(token, byName.id, { kind: "canceled" }); // (the sweep test counts running builds)
    builds.finish(admin, byAdmin.id, { kind: "canceled" });
    const refusal = (actor: Actor, ref: string) => {
      try {
        builds.create(actor, ref, []);
      } catch (e) {
        return { type: (e as Error).constructor.name, message: (e as Error).message };
      }
      throw new Error(`${ref} was accepted`);
    };
    const missing = refusal(token, "prj_nope");
    expect(missing).toEqual({ type: "NotFoundError", message: "no such project" });
    expect(refusal(token, "prj_b")).toEqual(missing); // another tenant's id
    expect(refusal(token, "org-b/p")).toEqual(missing); // another tenant's ORG/NAME
    expect(refusal(token, "org-a/nope")).toEqual(missing);
    expect(refusal(token, "nope/p")).toEqual(missing);
    expect(refusal(admin, "org-a/nope")).toEqual(missing);
    expect(refusal(admin, "prj_nope")).toEqual(missing);
  });

  test("multi-platform: one build id, one certificate and one route per platform", async () => {
    builderState = "starting";
    const { build, token: bt } = builds.create(token, PRJ, [{ tags: ["app:1"], outputs: [], push: false, load: false }]);
    expect(bt).toMatch(/^slw_b_/);
    expect(await builds.connection(token, build.id, "linux/amd64")).toEqual({ kind: "pending", waitMs: 1000 });
    builderState = "ready";
    const amd = await builds.connection(token, build.id, "linux/amd64");
    const arm = await builds.connection(token, build.id, "arm64");
    if (amd.kind !== "active" || arm.kind !== "active") throw new Error("expected active connections");
    expect(amd.serial).not.toBe(arm.serial);
    expect(amd.certPem).toContain("BEGIN CERTIFICATE");
    expect(amd.endpoint).toBe("tcp://slipway.test:8444");
    expect(builds.route(amd.serial)).toMatchObject({ buildId: build.id, platform: "linux/amd64", socketPath: "/run/linux-amd64.sock" });
    expect(builds.route(arm.serial)).toMatchObject({ buildId: build.id, platform: "linux/arm64", socketPath: "/run/linux-arm64.sock" });
    const row = builds.get(build.id);
    expect(row.status).toBe("running");
    expect(JSON.parse(row.platforms).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    // Finishing ends it once: the router is told, the builders released, the routes refused.
    builds.finish(token, build.id, { kind: "success" });
    builds.finish(token, build.id, { kind: "error", error: "late" }); // idempotent: stays finished
    expect(builds.get(build.id).status).toBe("finished");
    expect(ended.filter((x) => x === build.id)).toHaveLength(1);
    expect(released).toContain(build.id);
    expect(builds.route(amd.serial)).toBeNull();
    await expect(builds.connection(token, build.id, "linux/amd64")).rejects.toThrow(PreconditionError);
  });

  test("health: cancels_at after a cancel; expiry without health; the hard timeout; other tenants see nothing", async () => {
    builderState = "ready";
    const a = builds.create(token, PRJ, []).build;
    const b = builds.create(token, PRJ, []).build;
    const c = builds.create(token, PRJ, []).build;
    const conn = await builds.connection(token, a.id, "linux/amd64");
    if (conn.kind !== "active") throw new Error("expected an active connection");
    expect(builds.route(conn.serial)).not.toBeNull();
    expect(builds.health(token, a.id).cancelsAt).toBeNull();
    expect(() => builds.cancel(other, a.id)).toThrow(NotFoundError);
    builds.cancel(token, a.id);
    expect(builds.health(token, a.id).cancelsAt).not.toBeNull();
    expect(builds.route(conn.serial)).toBeNull(); // cancelled: no new connection to its builder
    clock += 20_000; // past the cancel grace; b and c are still within the health timeout
    builds.health(token, c.id);
    expect(builds.sweep()).toEqual([a.id]);
    expect(builds.get(a.id).status).toBe("canceled");
    clock += 50_000; // b: 70 s without health; c: 50 s
    expect(builds.sweep()).toEqual([b.id]);
    expect(builds.get(b.id).error).toContain("no health report");
    for (let i = 0; i < 12; i++) (clock += 50_000, builds.health(token, c.id)); // 600 s timeout: reported as cancels_at first
    expect(builds.health(token, c.id).cancelsAt?.toISOString()).toBe(builds.get(c.id).deadline_at);
    clock += 30_000;
    builds.health(token, c.id);
    expect(builds.sweep()).toEqual([c.id]);
    expect(builds.get(c.id).error).toContain("timeout");
  });

  test("status reports: steps upserted by digest, logs capped per build", () => {
    const { build } = builds.create(token, PRJ, []);
    const step = { digest: "sha256:1", name: "RUN x", cached: false, started: new Date(clock), completed: null, error: "" };
    builds.report(token, build.id, { steps: [step], logs: [{ vertex: "sha256:1", stream: 1, at: null, data: new TextEncoder().encode("a".repeat(40)) }] });
    builds.report(token, build.id, { steps: [{ ...step, completed: new Date(clock + 5), cached: true }], logs: [{ vertex: "sha256:1", stream: 1, at: null, data: new TextEncoder().encode("b".repeat(40)) }] });
    const steps = builds.steps(token, build.id);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ name: "RUN x", cached: 1 });
    expect(steps[0]!.completed_at).not.toBeNull();
    const logs = builds.logs(token, build.id);
    expect(logs.text).toBe("a".repeat(40) + "b".repeat(24));
    expect(logs.truncated).toBe(true);
    expect(() => builds.logs(other, build.id)).toThrow(NotFoundError);
  });

  test("a build token's steps and logs are refused once its build finished or was canceled; nothing is written", () => {
    for (const ending of [{ kind: "success" }, { kind: "canceled" }] as const) {
      const { build } = builds.create(token, PRJ, []);
      const buildToken: Actor = { kind: "build-token", tokenId: "tok_b", orgId: ORG, projectId: PRJ, buildId: build.id };
      const batch = (text: string) => ({ steps: [{ digest: `sha256:${text}`, name: `RUN ${text}`, cached: false, started: new Date(clock), completed: null, error: "" }], logs: [{ vertex: `sha256:${text}`, stream: 1, at: null, data: new TextEncoder().encode(text) }] });
      builds.report(buildToken, build.id, batch("during"));
      builds.finish(buildToken, build.id, ending);
      expect(() => builds.report(buildToken, build.id, batch("after"))).toThrow(PreconditionError);
      expect(() => builds.report(buildToken, build.id, batch("after"))).toThrow(/is (finished|canceled): it takes no more steps or logs/);
      expect(builds.steps(buildToken, build.id).map((s) => s.name)).toEqual(["RUN during"]);
      expect(builds.logs(buildToken, build.id).text).toBe("during");
    }
  });
});

describe("draining (serve stopping)", () => {
  test("CreateBuild is refused as unavailable, after the 401 and the foreign-project 404; live builds are in flight; the rest are canceled with the reason FinishBuild then answers", () => {
    clock += 120_000; // what earlier tests left active is long silent
    // Its own service on the same database: a drain is one-way.
    const drained = buildsServiceFactory({
      db,
      pki: { issueBuildClientCertificate: () => Promise.reject(new Error("unused")), trustedRootsPem: () => "" },
      builders: { request: async () => ({ state: "starting" }), release: () => {}, ready: () => null },
      router: { buildEnded: (id) => ended.push(id) },
      audit: auditServiceFactory({ db }),
      log: silentLogger,
      publicUrl: "https://slipway.test:8443",
      buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
      healthTimeoutMs: 60_000,
      logMaxBytes: 64,
      now: () => new Date(clock),
    });
    const live = drained.create(token, PRJ, []).build;
    const silent = drained.create(token, PRJ, []).build;
    clock += 10_000;
    const fresh = drained.create(token, PRJ, []).build;
    expect(drained.inFlight(60_000).sort()).toEqual([live.id, silent.id, fresh.id].sort()); // new: its first health report is due
    clock += 10_000;
    drained.health(token, live.id);
    expect(drained.inFlight(60_000).sort()).toEqual([live.id, fresh.id].sort()); // silent: 20 s and never heard from
    clock += 30_000;
    expect(drained.inFlight(60_000)).toEqual([live.id]);
    expect(drained.inFlight(20_000)).toEqual([]); // heard from 30 s ago
    drained.health(token, live.id);

    drained.stopAdmitting("shutting down: no new builds");
    expect(() => drained.create({ kind: "anonymous" }, PRJ, [])).toThrow(/authentication|credential|token/i);
    expect(() => drained.create(token, "prj_b", [])).toThrow(NotFoundError);
    expect(() => drained.create(token, PRJ, [])).toThrow(new UnavailableError("shutting down: no new builds"));
    // Builds admitted before the drain go on.
    expect(drained.health(token, live.id).cancelsAt).toBeNull();

    const canceled = drained.cancelForShutdown("shutting down: out of drain time");
    expect(canceled).toEqual(expect.arrayContaining([live.id, silent.id, fresh.id]));
    expect(ended).toEqual(expect.arrayContaining([live.id, silent.id, fresh.id])); // their connections close
    expect(drained.get(live.id)).toMatchObject({ status: "canceled", error: "shutting down: out of drain time" });
    expect(drained.untoldShutdownCancels()).toEqual(expect.arrayContaining([live.id, silent.id]));
    // The client's FinishBuild (whatever it reports) is answered with the reason, every time.
    for (let i = 0; i < 2; i++) expect(() => drained.finish(token, live.id, { kind: "error", error: "EOF" })).toThrow(new UnavailableError("shutting down: out of drain time"));
    expect(drained.untoldShutdownCancels()).not.toContain(live.id);
    expect(drained.get(live.id).status).toBe("canceled");
    expect(() => drained.finish(other, live.id, { kind: "success" })).toThrow(NotFoundError); // still nothing for other tenants
    expect(drained.cancelForShutdown("again")).toEqual([]); // nothing active is left
  });
});
