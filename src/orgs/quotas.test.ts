/**
 * @module orgs/quotas.test
 * Quotas against a real SQLite database with the migrations: defaults and per-organization
 * overrides, projects refused beyond the count and settings beyond the per-builder and cache
 * quotas (nothing made), defaults fitted to a quota, and a quota lowered below what exists.
 */
import type { Database } from "bun:sqlite";
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Actor } from "../auth/actor.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { QuotaExceededError } from "../errors.ts";
import { projectsServiceFactory, type ProjectsService } from "../projects/service.ts";
import { cappedSettings, quotasServiceFactory, quotaUsageOf, type Quotas, type QuotasService } from "./quotas.ts";
import { orgsServiceFactory } from "./service.ts";

const dir = mkdtempSync(join(tmpdir(), "quotas-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DEFAULTS: Quotas = {
  max_projects: 3,
  max_builder_cpus: 4,
  max_builder_memory_mb: 8192,
  max_cache_size_gb: 100,
  max_running_builders: 2,
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
let quotas: QuotasService;
let projects: ProjectsService;
let org: string;
let other: string;
let n = 0;

beforeEach(() => {
  db = openDatabase(join(dir, `db-${++n}.sqlite`));
  applyMigrations(db);
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  quotas = quotasServiceFactory({ db, audit, defaults: DEFAULTS, usage: quotaUsageOf(() => ({ projects })) });
  projects = projectsServiceFactory({ db, audit, quotas, orgs });
  orgs.createUser({ username: "owner" }, ADMIN);
  org = orgs.create({ slug: "acme", name: "Acme", owner: "owner" }, ADMIN).id;
  other = orgs.create({ slug: "other", name: "Other", owner: "owner" }, ADMIN).id;
});

const refusal = (f: () => unknown): QuotaExceededError => {
  try {
    f();
  } catch (e) {
    if (e instanceof QuotaExceededError) return e;
    throw e;
  }
  throw new Error("not refused");
};
const count = () => (db.query("SELECT count(*) AS n FROM projects WHERE org_id = ?").get(org) as { n: number }).n;

describe("quotas", () => {
  test("defaults hold until the administrator overrides one; null returns it to the default; other organizations are untouched", () => {
    expect(quotas.report(org)).toEqual({
      limits: DEFAULTS,
      defaults: DEFAULTS,
      overrides: {},
      usage: { projects: 0, running_builders: 0 },
    });
    quotas.set(org, { max_projects: 10, max_builder_cpus: 2 }, ADMIN);
    expect(quotas.limits(org)).toEqual({ ...DEFAULTS, max_projects: 10, max_builder_cpus: 2 });
    quotas.set(org, { max_projects: null }, ADMIN);
    expect(quotas.report(org).overrides).toEqual({ max_builder_cpus: 2 });
    expect(quotas.limits(other)).toEqual(DEFAULTS);
    const audit = db.query("SELECT action, details FROM audit_log WHERE action = 'org.quotas' ORDER BY id").all() as {
      details: string;
    }[];
    expect(audit).toHaveLength(2);
  });

  test("a project beyond max_projects is refused, naming the quota, its limit and the count; nothing is made", () => {
    for (const name of ["a", "b", "c"]) projects.create(org, { name }, ADMIN);
    const e = refusal(() => projects.create(org, { name: "d" }, ADMIN));
    expect({ quota: e.quota, limit: e.limit, current: e.current }).toEqual({
      quota: "max_projects",
      limit: 3,
      current: 3,
    });
    expect(e.message).toBe(
      "the organization has 3 project(s), its quota max_projects is 3: delete a project or ask the administrator to raise the quota",
    );
    expect(count()).toBe(3);
    projects.create(other, { name: "d" }, ADMIN); // counted per organization
  });

  test("settings beyond the CPU, memory and cache quotas are refused at create and update", () => {
    for (const [setting, value, quota, limit] of [
      ["builder_cpus", 5, "max_builder_cpus", 4],
      ["builder_memory_mb", 8193, "max_builder_memory_mb", 8192],
      ["cache_size_gb", 101, "max_cache_size_gb", 100],
    ] as const) {
      const e = refusal(() => projects.create(org, { name: "big", [setting]: value }, ADMIN));
      expect({ quota: e.quota, limit: e.limit, current: e.current }).toEqual({ quota, limit, current: value });
      expect(e.message).toBe(
        `${setting} ${value} is beyond the organization's quota ${quota} of ${limit}: ask the administrator to raise it`,
      );
    }
    expect(count()).toBe(0);
    const p = projects.create(org, { name: "ok", builder_cpus: 4, builder_memory_mb: 8192, cache_size_gb: 100 }, ADMIN);
    refusal(() => projects.update(p.id, { builder_cpus: 8 }, ADMIN));
    expect(projects.get(p.id).builder_cpus).toBe(4);
  });

  test("a project created without settings gets defaults fitted to the quotas", () => {
    quotas.set(org, { max_builder_cpus: 1, max_builder_memory_mb: 1024, max_cache_size_gb: 10 }, ADMIN);
    expect(projects.create(org, { name: "small" }, ADMIN)).toMatchObject({
      builder_cpus: 1,
      builder_memory_mb: 1024,
      cache_size_gb: 10,
    });
  });

  test("lowering quotas below what exists breaks nothing: projects and settings stay, builders get the quota, only raising is refused", () => {
    const p = projects.create(org, { name: "a", builder_cpus: 4, builder_memory_mb: 8192 }, ADMIN);
    projects.create(org, { name: "b" }, ADMIN);
    quotas.set(org, { max_projects: 1, max_builder_cpus: 2, max_builder_memory_mb: 2048 }, ADMIN);
    expect(quotas.report(org).usage.projects).toBe(2);
    expect(projects.update(p.id, { name: "renamed", builder_cpus: 4 }, ADMIN).name).toBe("renamed"); // unchanged values pass
    expect(projects.update(p.id, { builder_cpus: 2 }, ADMIN).builder_cpus).toBe(2); // going down passes
    refusal(() => projects.update(p.id, { builder_cpus: 3 }, ADMIN));
    refusal(() => projects.create(org, { name: "c" }, ADMIN));
    expect(cappedSettings(projects.get(p.id), quotas.limits(org))).toMatchObject({
      builder_cpus: 2,
      builder_memory_mb: 2048,
    });
  });
});
