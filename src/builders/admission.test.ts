/**
 * @module builders/admission.test
 * Which builder may start when slots are short: the host-wide cap (builders.max_running), the
 * organization's max_running_builders, the fair order of waiting requests (the organization
 * running the fewest first, first come first served within one), reclaiming an idle builder, the
 * bounded wait, and CreateBuild's early refusal. A real SQLite database with the migrations; the
 * Docker engine and the volumes are stand-ins, and a cache volume never comes, so an admitted
 * builder stays "starting" and keeps its slot (builders for real: test/e2e/quotas.test.ts).
 */
import type Docker from "dockerode";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { QuotaExceededError, ResourceExhaustedError } from "../errors.ts";
import { silentLogger } from "../log/logger.ts";
import { quotasServiceFactory, quotaUsageOf, type Quotas } from "../orgs/quotas.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import { builderServiceFactory } from "./service.ts";

const dir = mkdtempSync(join(tmpdir(), "admission-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const AMD64 = "linux/amd64";
const DEFAULTS: Quotas = {
  max_projects: 100,
  max_builder_cpus: 16,
  max_builder_memory_mb: 32768,
  max_cache_size_gb: 200,
  max_running_builders: 8,
};

const ADMIN: Actor = {
  kind: "user",
  userId: "usr_admin",
  username: "admin",
  isAdmin: true,
  tokenId: null,
  memberships: {},
};
let db: Database;
let clock: number;
let stopped: string[];
let n = 0;

function setup(opts: { maxRunning: number; queueTimeoutMs?: number; orgLimits?: Record<string, number> }) {
  db = openDatabase(join(dir, `db-${++n}.sqlite`));
  applyMigrations(db);
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  const quotas = quotasServiceFactory({ db, audit, defaults: DEFAULTS, usage: quotaUsageOf(() => ({ projects })) });
  const projects = projectsServiceFactory({ db, audit, quotas, orgs });
  orgs.createUser({ username: "owner" }, ADMIN);
  const orgIds: Record<string, string> = {};
  for (const slug of ["org-a", "org-b"]) {
    orgIds[slug] = orgs.create({ slug, name: slug, owner: "owner" }, ADMIN).id;
    if (opts.orgLimits?.[slug] !== undefined)
      quotas.set(orgIds[slug], { max_running_builders: opts.orgLimits[slug] }, ADMIN);
  }
  const project = (org: string, name: string) => projects.create(orgIds[org]!, { name }, ADMIN).id;
  stopped = [];
  clock = Date.parse("2026-01-01T00:00:00Z");
  const docker = {
    info: async () => ({ Architecture: "x86_64" }),
    getImage: () => ({ inspect: async () => ({ Id: "sha256:test" }) }),
    getContainer: (id: string) => ({
      stop: async () => void stopped.push(id),
      remove: async () => {},
      inspect: async () => Promise.reject(Object.assign(new Error("gone"), { statusCode: 404 })),
    }),
    getNetwork: () => ({ remove: async () => {} }),
  } as unknown as Docker;
  const manager = builderServiceFactory({
    db,
    // The services that own those tables, as serve wires them.
    projects,
    orgs,
    docker,
    // A start gets as far as its cache volume, which never comes: it stays "starting", holding its slot.
    volumes: { close: async () => {}, ensure: () => new Promise(() => {}) } as never,
    applianceId: "app_test",
    dataDir: dir,
    runtime: "dockerd",
    image: "slipway/builder-dockerd:test",
    log: silentLogger,
    quotas,
    maxRunning: opts.maxRunning,
    queueTimeoutMs: opts.queueTimeoutMs ?? 60_000,
    now: () => new Date(clock),
  });
  return { manager, project, orgIds };
}

/** A builder already running for `projectId`: busy ('ready') or idle. */
function running(projectId: string, state: "ready" | "idle", lastUsed = "2026-01-01T00:00:00Z") {
  const id = `bldr_${projectId}`;
  db.query(
    "INSERT INTO builders (id, project_id, platform, runtime, state, container_id, socket_path, last_used_at, updated_at) VALUES (?, ?, ?, 'dockerd', ?, ?, '/nonexistent', ?, ?)",
  ).run(id, projectId, AMD64, state, `ctr_${projectId}`, lastUsed, lastUsed);
  return id;
}
const stop = (projectId: string) =>
  db.query("UPDATE builders SET state = 'absent', container_id = NULL WHERE project_id = ?").run(projectId);
const ask = (m: ReturnType<typeof setup>["manager"], projectId: string, build: string) =>
  m.request({ projectId, platform: AMD64 }, build).then((s) => s.state);
/** Whether the request was admitted: a start began (it holds a slot, so it counts as running). */
const startedFor = (projectId: string) =>
  (db.query("SELECT state FROM builders WHERE project_id = ?").get(projectId) as { state: string } | null)?.state ===
  "starting";

describe("builder admission", () => {
  test("a full host queues requests; a freed slot goes to the organization running fewest, then first come", async () => {
    const { manager, project } = setup({ maxRunning: 2 });
    const a1 = project("org-a", "a1"),
      a2 = project("org-a", "a2"),
      a3 = project("org-a", "a3"),
      a4 = project("org-a", "a4"),
      b1 = project("org-b", "b1");
    running(a1, "ready");
    running(a2, "ready");
    // Org A asks first (twice), then org B: all wait, the host runs 2 of 2.
    for (const [p, b] of [
      [a3, "bld_a3"],
      [a4, "bld_a4"],
      [b1, "bld_b1"],
    ] as const)
      expect(await ask(manager, p, b)).toBe("starting");
    expect(manager.running()).toHaveLength(2);
    stop(a1); // one slot frees
    clock += 1000;
    // A's requests poll first, yet B (running none) gets the slot.
    expect(await ask(manager, a3, "bld_a3")).toBe("starting");
    expect(await ask(manager, a4, "bld_a4")).toBe("starting");
    expect(await ask(manager, b1, "bld_b1")).toBe("starting");
    await Bun.sleep(10);
    expect(startedFor(b1)).toBe(true);
    expect(startedFor(a3)).toBe(false);
    stop(a2);
    clock += 1000;
    // Within org A, first come first served: a4 polls first but a3 asked first.
    await ask(manager, a4, "bld_a4");
    await ask(manager, a3, "bld_a3");
    await Bun.sleep(10);
    expect(startedFor(a3)).toBe(true);
    expect(startedFor(a4)).toBe(false);
  });

  test("a request that waited past the queue timeout is refused with resource_exhausted naming the host limit", async () => {
    const { manager, project } = setup({ maxRunning: 1, queueTimeoutMs: 5000 });
    const a1 = project("org-a", "a1"),
      b1 = project("org-b", "b1");
    running(a1, "ready");
    expect(await ask(manager, b1, "bld_b1")).toBe("starting");
    clock += 5000;
    const e = await manager.request({ projectId: b1, platform: AMD64 }, "bld_b1").catch((x: Error) => x);
    expect(e).toBeInstanceOf(ResourceExhaustedError);
    expect((e as Error).message).toBe(
      "no builder after waiting 5 s: this host runs 1 builder(s), its limit builders.max_running is 1; try again later",
    );
    // The depot CLI asks a second time: that build is refused at once, not queued again.
    clock += 1000;
    expect(await manager.request({ projectId: b1, platform: AMD64 }, "bld_b1").catch((x: Error) => x)).toBe(e);
    // Another build queues afresh.
    expect(await ask(manager, b1, "bld_b1_again")).toBe("starting");
  });

  test("a waiting request stops the least recently used idle builder instead of waiting for its idle timeout", async () => {
    const { manager, project } = setup({ maxRunning: 2 });
    const a1 = project("org-a", "a1"),
      a2 = project("org-a", "a2"),
      b1 = project("org-b", "b1");
    running(a1, "idle", "2026-01-01T00:00:05Z");
    running(a2, "idle", "2026-01-01T00:00:01Z");
    expect(await ask(manager, b1, "bld_b1")).toBe("starting");
    await Bun.sleep(20);
    expect(stopped).toEqual([`ctr_${a2}`]);
    clock += 1000;
    await ask(manager, b1, "bld_b1");
    await Bun.sleep(10);
    expect(startedFor(b1)).toBe(true);
  });

  test("an organization at its quota waits for its own slots even on an empty host, and only its own idle builders are stopped", async () => {
    const { manager, project } = setup({ maxRunning: 10, orgLimits: { "org-a": 1 } });
    const a1 = project("org-a", "a1"),
      a2 = project("org-a", "a2"),
      b1 = project("org-b", "b1");
    running(a1, "ready");
    running(b1, "idle");
    expect(await ask(manager, a2, "bld_a2")).toBe("starting");
    await Bun.sleep(10);
    expect(startedFor(a2)).toBe(false);
    expect(stopped).toEqual([]); // B's idle builder is no help to A
    manager.release("bld_a2"); // the build ended: it no longer waits
    stop(a1);
  });

  test("CreateBuild's early answer: refused when the organization's builders are all busy at its quota, naming limit and value", async () => {
    const { manager, project, orgIds } = setup({ maxRunning: 10, orgLimits: { "org-a": 2, "org-b": 0 } });
    const a1 = project("org-a", "a1"),
      a2 = project("org-a", "a2"),
      a3 = project("org-a", "a3"),
      b1 = project("org-b", "b1");
    running(a1, "ready");
    expect(() => manager.admissible(orgIds["org-a"]!, a3)).not.toThrow();
    running(a2, "ready");
    const e = (() => {
      try {
        manager.admissible(orgIds["org-a"]!, a3);
      } catch (x) {
        return x as QuotaExceededError;
      }
    })();
    expect(e).toBeInstanceOf(QuotaExceededError);
    expect({ quota: e!.quota, limit: e!.limit, current: e!.current }).toEqual({
      quota: "max_running_builders",
      limit: 2,
      current: 2,
    });
    expect(e!.message).toContain(
      "the organization runs 2 builder(s) for builds in progress and its quota max_running_builders is 2",
    );
    // A project whose builder runs builds on it; an idle builder of the organization makes room.
    expect(() => manager.admissible(orgIds["org-a"]!, a1)).not.toThrow();
    db.query("UPDATE builders SET state = 'idle' WHERE project_id = ?").run(a2);
    expect(() => manager.admissible(orgIds["org-a"]!, a3)).not.toThrow();
    // A quota of 0: no builder at all, at CreateBuild and at the request.
    expect(() => manager.admissible(orgIds["org-b"]!, b1)).toThrow(QuotaExceededError);
    expect(await manager.request({ projectId: b1, platform: AMD64 }, "bld_b1").catch((x: Error) => x)).toBeInstanceOf(
      QuotaExceededError,
    );
  });
});
