/**
 * @module test/support/builder-deps
 * What a builder service reads of other tables, from the services that own them over a test's
 * database: a project's settings and organization (projects service), an organization's OCI
 * runtime (organizations service). Serve wires the same services.
 */
import type { Database } from "bun:sqlite";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import type { BuilderOrgs, BuilderProjects } from "../../src/builders/index.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { projectsServiceFactory } from "../../src/projects/service.ts";

export function builderTableDeps(db: Database): { projects: BuilderProjects; orgs: BuilderOrgs } {
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  return { projects: projectsServiceFactory({ db, audit, orgs }), orgs };
}
