/**
 * @module orgs/quotas
 * Per-organization limits, set by the administrator alone: how many projects, how many CPUs and
 * how much memory one builder may get, how large one project's cache may be, and how many
 * builders may run at once. Each defaults to the [quotas] section of the configuration; an
 * override per organization is stored in `org_quotas` (NULL: back to the default).
 *
 * Lowering a limit below what an organization already uses breaks nothing that exists: projects
 * stay, settings above the limit stay stored but builders start within the limit, running
 * builders keep running; only what would go further (a new project, a setting raised, another
 * builder) is refused.
 */
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import type { AuditService } from "../auth/audit.ts";
import { QuotaExceededError } from "../errors.ts";
import { QUOTA_KEYS, QUOTA_RANGES, type QuotaKey } from "./models.ts";

// The quotas and their ranges are part of the API's models (one definition).
export { QUOTA_KEYS, QUOTA_RANGES, type QuotaKey };
export type Quotas = Record<QuotaKey, number>;

/** Which project setting each per-builder quota caps. */
export const SETTING_QUOTAS = {
  builder_cpus: "max_builder_cpus",
  builder_memory_mb: "max_builder_memory_mb",
  cache_size_gb: "max_cache_size_gb",
} as const satisfies Record<string, QuotaKey>;
export type CappedSetting = keyof typeof SETTING_QUOTAS;

export interface QuotaReport {
  /** What holds now: the override where one is set, else the default. */
  limits: Quotas;
  defaults: Quotas;
  /** Only the quotas the administrator set for this organization. */
  overrides: Partial<Quotas>;
  usage: { projects: number; running_builders: number };
}

/**
 * What an organization uses, counted by the tables' owners. Declared here, narrow, because the
 * quotas sit below both owners (projects/service and the builder service check against them).
 */
export interface QuotaUsage {
  /** projects/service `countInOrg`. */
  projects(orgId: string): number;
  /** Builders of the organization that are not absent (starting, ready, idle or stopping). */
  runningBuilders(orgId: string): number;
}

/**
 * QuotaUsage counted by the owners: projects by projects/service, builders per project by the
 * builder service (`list`). `owners` is called at each count, so the quotas can be made before
 * the services that check against them.
 */
export function quotaUsageOf(
  owners: () => {
    projects: { countInOrg(orgId: string): number; list(orgId: string): { id: string }[] };
    builders?: { list(projectId: string): { state: string }[] };
  },
): QuotaUsage {
  return {
    projects: (orgId) => owners().projects.countInOrg(orgId),
    runningBuilders: (orgId) => {
      const { projects, builders } = owners();
      if (!builders) return 0;
      return projects
        .list(orgId)
        .reduce((n, p) => n + builders.list(p.id).filter((b) => b.state !== "absent").length, 0);
    },
  };
}

export interface QuotasDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  defaults: Quotas;
  usage: QuotaUsage;
  now?: () => Date;
}

export type QuotasService = ReturnType<typeof quotasServiceFactory>;

export function quotasServiceFactory({ db, audit, defaults, usage, now = () => new Date() }: QuotasDeps) {
  const overrideRow = db.query(`SELECT ${QUOTA_KEYS.join(", ")} FROM org_quotas WHERE org_id = ?`);

  function overrides(orgId: string): Partial<Quotas> {
    const r = overrideRow.get(orgId) as Record<QuotaKey, number | null> | null;
    const out: Partial<Quotas> = {};
    if (r) for (const k of QUOTA_KEYS) if (r[k] !== null) out[k] = r[k];
    return out;
  }

  function limits(orgId: string): Quotas {
    return { ...defaults, ...overrides(orgId) };
  }

  return {
    limits,

    report(orgId: string): QuotaReport {
      return {
        limits: limits(orgId),
        defaults: { ...defaults },
        overrides: overrides(orgId),
        usage: { projects: usage.projects(orgId), running_builders: usage.runningBuilders(orgId) },
      };
    },

    /** Sets (a number) or clears (null) overrides; keys not named stay as they are. */
    set(orgId: string, patch: Partial<Record<QuotaKey, number | null>>, actor: Actor): QuotaReport {
      const next: Record<QuotaKey, number | null> = {
        ...Object.fromEntries(QUOTA_KEYS.map((k) => [k, null])),
        ...overrides(orgId),
      } as Record<QuotaKey, number | null>;
      for (const k of QUOTA_KEYS) if (patch[k] !== undefined) next[k] = patch[k];
      db.transaction(() => {
        db.query(
          `INSERT INTO org_quotas (org_id, ${QUOTA_KEYS.join(", ")}, updated_at) VALUES (?, ${QUOTA_KEYS.map(() => "?").join(", ")}, ?)
           ON CONFLICT (org_id) DO UPDATE SET ${QUOTA_KEYS.map((k) => `${k} = excluded.${k}`).join(", ")}, updated_at = excluded.updated_at`,
        ).run(orgId, ...QUOTA_KEYS.map((k) => next[k]), now().toISOString());
        audit.record({ orgId, actor, action: "org.quotas", target: orgId, details: patch });
      })();
      return this.report(orgId);
    },

    /** Throws unless the organization may have one more project. Call inside the creating transaction. */
    checkProjectCount(orgId: string): void {
      const limit = limits(orgId).max_projects;
      const n = usage.projects(orgId);
      if (n >= limit) {
        throw new QuotaExceededError(
          `the organization has ${n} project(s), its quota max_projects is ${limit}: delete a project or ask the administrator to raise the quota`,
          "max_projects",
          limit,
          n,
        );
      }
    },

    /**
     * Throws if a setting being set goes beyond its quota. `current` (on update): a value left as
     * it is stays allowed even above a lowered quota, so renaming such a project still works.
     */
    checkSettings(
      orgId: string,
      settings: Partial<Record<CappedSetting, number>>,
      current?: Record<CappedSetting, number>,
    ): void {
      const l = limits(orgId);
      for (const [setting, quota] of Object.entries(SETTING_QUOTAS) as [CappedSetting, QuotaKey][]) {
        const v = settings[setting];
        if (v === undefined || v <= l[quota] || v === current?.[setting]) continue;
        throw new QuotaExceededError(
          `${setting} ${v} is beyond the organization's quota ${quota} of ${l[quota]}: ask the administrator to raise it`,
          quota,
          l[quota],
          v,
        );
      }
    },
  };
}

/** A project's builder settings as its builders get them: never beyond the organization's quotas. */
export function cappedSettings<T extends Record<CappedSetting, number>>(settings: T, limits: Quotas): T {
  return {
    ...settings,
    builder_cpus: Math.min(settings.builder_cpus, limits.max_builder_cpus),
    builder_memory_mb: Math.min(settings.builder_memory_mb, limits.max_builder_memory_mb),
    cache_size_gb: Math.min(settings.cache_size_gb, limits.max_cache_size_gb),
  };
}
