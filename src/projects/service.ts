/**
 * @module projects/service
 * Projects of an organization and their settings (cache size and keep days, builder size and
 * idle timeout, build hard timeout). Names are unique within the organization.
 */
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import type { AuditService } from "../auth/audit.ts";
import { ConflictError, NotFoundError, UnavailableError } from "../errors.ts";
import { isUniqueViolation } from "../db/index.ts";
import { newId } from "../ids.ts";
import { cappedSettings, type QuotasService } from "../orgs/quotas.ts";
import { PROJECT_NAME_PATTERN, PROJECT_NAME_RULE, SETTING_LIMITS } from "./models.ts";
import type { OrgsService } from "../orgs/service.ts";

export interface ProjectSettings {
  cache_size_gb: number;
  cache_keep_days: number;
  builder_cpus: number;
  builder_memory_mb: number;
  builder_idle_timeout_seconds: number;
  build_timeout_seconds: number;
}

export interface Project extends ProjectSettings {
  id: string;
  org_id: string;
  name: string;
  created_at: string;
}

export const DEFAULT_SETTINGS: ProjectSettings = {
  cache_size_gb: 50,
  cache_keep_days: 14,
  builder_cpus: 2,
  builder_memory_mb: 4096,
  builder_idle_timeout_seconds: 300,
  build_timeout_seconds: 7200,
};
const SETTING_KEYS = Object.keys(DEFAULT_SETTINGS) as (keyof ProjectSettings)[];

// The name rule and the settings' ranges are part of the API's models (one definition).
export { PROJECT_NAME_PATTERN, PROJECT_NAME_RULE, SETTING_LIMITS };

export type ProjectsService = ReturnType<typeof projectsServiceFactory>;

export interface ProjectsDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  /** Frees what a project holds outside the database (its builders and cache volumes) before
   * the project is deleted; if it fails, the project stays. */
  release?: (projectId: string) => Promise<void>;
  /** The organization's quotas (project count, builder size, cache size); none: unlimited. */
  quotas?: Pick<QuotasService, "limits" | "checkProjectCount" | "checkSettings">;
  /** Organizations: ORG/NAME project references name one by slug; a project's builders run
   * under its organization's OCI runtime. */
  orgs: Pick<OrgsService, "findIdBySlug" | "builderRuntime">;
  /** Empties a project's build cache (stops its builders, erases their volumes). */
  resetCache?: (projectId: string) => Promise<CacheReset>;
  now?: () => Date;
}

/** What a cache reset did: the platforms whose builders and volumes went. */
export interface CacheReset {
  platforms: string[];
}

/** What a project's builders are made from: its settings and its organization's OCI runtime. */
export interface ProjectBuilderSettings
  extends Pick<
    ProjectSettings,
    "cache_size_gb" | "cache_keep_days" | "builder_cpus" | "builder_memory_mb" | "builder_idle_timeout_seconds"
  > {
  id: string;
  org_id: string;
  builder_oci_runtime: string | null;
}

// Over 120 lines as a whole: a service factory, whose methods (each short) are the units; the
// closure only shares prepared statements.
export function projectsServiceFactory({
  db,
  audit,
  release,
  quotas,
  orgs,
  resetCache,
  now = () => new Date(),
}: ProjectsDeps) {
  const byId = db.query("SELECT * FROM projects WHERE id = ?");
  const byOrgAndName = db.query("SELECT * FROM projects WHERE org_id = ? AND name = ?");
  const countIn = db.query("SELECT count(*) AS n FROM projects WHERE org_id = ?");
  // On every authentication of a project, build or OIDC token: the one column, nothing more.
  const orgOfId = db.query("SELECT org_id FROM projects WHERE id = ?");

  return {
    get(id: string): Project {
      const p = byId.get(id) as Project | null;
      if (!p) throw new NotFoundError("no such project");
      return p;
    },

    /** By id, or null. */
    find(id: string): Project | null {
      return byId.get(id) as Project | null;
    },

    /** By id or as ORG/NAME (organization slug and project name, as CreateBuild names it), or null. */
    findByRef(ref: string): Project | null {
      const slash = ref.indexOf("/");
      if (slash < 0) return byId.get(ref) as Project | null;
      const orgId = orgs.findIdBySlug(ref.slice(0, slash));
      return orgId ? (byOrgAndName.get(orgId, ref.slice(slash + 1)) as Project | null) : null;
    },

    /** The organization a project belongs to, or null when there is no such project. */
    orgOf(id: string): string | null {
      return (orgOfId.get(id) as { org_id: string } | null)?.org_id ?? null;
    },

    /** The organization of each of these projects that exists, in one query (admission asks per build). */
    orgsOf(ids: readonly string[]): Map<string, string> {
      if (ids.length === 0) return new Map();
      const rows = db
        .query(`SELECT id, org_id FROM projects WHERE id IN (${ids.map(() => "?").join(",")})`)
        .all(...ids) as { id: string; org_id: string }[];
      return new Map(rows.map((r) => [r.id, r.org_id]));
    },

    countInOrg(orgId: string): number {
      return (countIn.get(orgId) as { n: number }).n;
    },

    /** What the project's builders are made from (the builder service's view), or null. */
    builderSettings(id: string): ProjectBuilderSettings | null {
      const p = byId.get(id) as Project | null;
      if (!p) return null;
      const { org_id, cache_size_gb, cache_keep_days, builder_cpus, builder_memory_mb, builder_idle_timeout_seconds } =
        p;
      return {
        id,
        org_id,
        cache_size_gb,
        cache_keep_days,
        builder_cpus,
        builder_memory_mb,
        builder_idle_timeout_seconds,
        builder_oci_runtime: orgs.builderRuntime(org_id),
      };
    },

    /** Empties the project's build cache (its builders stop; the next build starts cold); audited. */
    async resetCache(id: string, actor: Actor): Promise<CacheReset> {
      const current = this.get(id);
      if (!resetCache) throw new UnavailableError("this appliance runs no builders: there is no cache to reset");
      const r = await resetCache(id);
      audit.record({ orgId: current.org_id, actor, action: "cache.reset", target: id, details: { ...r } });
      return r;
    },

    list(orgId: string): Project[] {
      return db.query("SELECT * FROM projects WHERE org_id = ? ORDER BY name").all(orgId) as Project[];
    },

    /** Every project `actor` can see (the REST list and the depot CLI's ListProjects). */
    visibleTo(actor: Actor): Project[] {
      switch (actor.kind) {
        case "project-token":
          return this.listIds([actor.projectId]);
        case "oidc":
          return this.listIds(actor.projects.map((p) => p.projectId));
        case "org-token":
          return this.list(actor.orgId);
        case "user": {
          if (actor.isAdmin) return db.query("SELECT * FROM projects ORDER BY name").all() as Project[];
          const orgIds = Object.keys(actor.memberships);
          if (orgIds.length === 0) return [];
          return db
            .query(`SELECT * FROM projects WHERE org_id IN (${orgIds.map(() => "?").join(",")}) ORDER BY name`)
            .all(...orgIds) as Project[];
        }
        default:
          return [];
      }
    },

    /** Projects among `ids` (for project-scoped credentials). */
    listIds(ids: string[]): Project[] {
      if (ids.length === 0) return [];
      return db
        .query(`SELECT * FROM projects WHERE id IN (${ids.map(() => "?").join(",")}) ORDER BY name`)
        .all(...ids) as Project[];
    },

    create(orgId: string, input: { name: string } & Partial<ProjectSettings>, actor: Actor): Project {
      const chosen = pickSettings(input);
      quotas?.checkProjectCount(orgId); // first: no setting makes a project beyond the count possible
      quotas?.checkSettings(orgId, chosen);
      // Defaults fit the organization's quotas: a project created without settings always can be.
      const defaults = quotas ? cappedSettings(DEFAULT_SETTINGS, quotas.limits(orgId)) : DEFAULT_SETTINGS;
      const p: Project = {
        ...defaults,
        ...chosen,
        id: newId("prj"),
        org_id: orgId,
        name: input.name,
        created_at: now().toISOString(),
      };
      try {
        db.transaction(() => {
          quotas?.checkProjectCount(orgId); // counted in the creating transaction: no race past it
          db.query(
            `INSERT INTO projects (id, org_id, name, ${SETTING_KEYS.join(", ")}, created_at) VALUES (?, ?, ?, ${SETTING_KEYS.map(() => "?").join(", ")}, ?)`,
          ).run(p.id, p.org_id, p.name, ...SETTING_KEYS.map((k) => p[k]), p.created_at);
          audit.record({ orgId, actor, action: "project.create", target: p.id, details: { name: p.name } });
        })();
      } catch (e) {
        if (isUniqueViolation(e))
          throw new ConflictError(`a project named '${input.name}' already exists in this organization`);
        throw e;
      }
      return p;
    },

    update(id: string, patch: { name?: string } & Partial<ProjectSettings>, actor: Actor): Project {
      const current = this.get(id);
      quotas?.checkSettings(current.org_id, pickSettings(patch), current);
      const next = { ...current, ...pickSettings(patch), name: patch.name ?? current.name };
      try {
        db.transaction(() => {
          db.query(`UPDATE projects SET name = ?, ${SETTING_KEYS.map((k) => `${k} = ?`).join(", ")} WHERE id = ?`).run(
            next.name,
            ...SETTING_KEYS.map((k) => next[k]),
            id,
          );
          audit.record({ orgId: current.org_id, actor, action: "project.update", target: id, details: patch });
        })();
      } catch (e) {
        if (isUniqueViolation(e))
          throw new ConflictError(`a project named '${patch.name}' already exists in this organization`);
        throw e;
      }
      return next;
    },

    async delete(id: string, actor: Actor): Promise<void> {
      const current = this.get(id);
      await release?.(id);
      db.transaction(() => {
        db.query("DELETE FROM projects WHERE id = ?").run(id);
        audit.record({
          orgId: current.org_id,
          actor,
          action: "project.delete",
          target: id,
          details: { name: current.name },
        });
      })();
    },
  };
}

function pickSettings(input: Partial<ProjectSettings>): Partial<ProjectSettings> {
  const out: Partial<ProjectSettings> = {};
  for (const k of SETTING_KEYS) if (input[k] !== undefined) out[k] = input[k];
  return out;
}
