/**
 * @module auth/ci-trusts
 * Trust relationships stored per project, and the CI side of authentication: a raw OIDC JWT is
 * verified against the trusts of its issuer and becomes an actor scoped to the projects whose
 * trusts it matched (each call then names the one it acts on); `exchange` turns it into a
 * short-lived Slipway token for one project. Rejections are audited with their precise reason, in
 * the appliance's log; callers only ever see "invalid or expired credentials".
 */
import type { Database } from "bun:sqlite";
import { InvalidInputError, UnauthenticatedError } from "../errors.ts";
import { newId } from "../ids.ts";
import { oidcLabel, type Actor } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import {
  peekJws,
  validateTrust,
  type CiTokenVerifier,
  type InternalAllowance,
  type TrustRelationship,
} from "./oidc/index.ts";
import type { TokensService } from "./api-tokens.ts";

/** Exchanged tokens never outlive the CI token, and never an hour. */
const MAX_EXCHANGED_MS = 3600_000;

interface TrustRow {
  id: string;
  project_id: string;
  provider: string;
  issuer: string;
  audiences: string;
  config: string;
  static_jwks: string | null;
  created_at: string;
}

export interface TrustView {
  id: string;
  project_id: string;
  provider: TrustRelationship["provider"];
  issuer: string;
  audiences: string[];
  config: Record<string, unknown>;
  static_jwks: boolean;
  created_at: string;
}

const toTrust = (r: TrustRow): TrustRelationship =>
  ({
    id: r.id,
    projectId: r.project_id,
    provider: r.provider,
    issuer: r.issuer,
    audiences: JSON.parse(r.audiences),
    ...JSON.parse(r.config),
    ...(r.static_jwks ? { staticJwks: JSON.parse(r.static_jwks) } : {}),
  }) as TrustRelationship;

const toView = (r: TrustRow): TrustView => ({
  id: r.id,
  project_id: r.project_id,
  provider: r.provider as TrustView["provider"],
  issuer: r.issuer,
  audiences: JSON.parse(r.audiences),
  config: JSON.parse(r.config),
  static_jwks: r.static_jwks !== null,
  created_at: r.created_at,
});

export interface TrustDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  verifier: CiTokenVerifier;
  tokens: Pick<TokensService, "create">;
  /** projects/service (declared here, narrow: auth sits below the projects room). */
  projects: { orgOf(projectId: string): string | null; findByRef(ref: string): { id: string } | null };
  /** Issuers the operator allows on internal addresses: an issuer URL is checked against it when a trust is added. */
  allowInternal?: InternalAllowance;
  now?: () => Date;
}

export type TrustService = ReturnType<typeof trustServiceFactory>;

export function trustServiceFactory({
  db,
  audit,
  verifier,
  tokens,
  projects,
  allowInternal,
  now = () => new Date(),
}: TrustDeps) {
  const byIssuer = db.query("SELECT * FROM trust_relationships WHERE issuer = ?");
  const byIssuerAndProject = db.query("SELECT * FROM trust_relationships WHERE issuer = ? AND project_id = ?");
  /** A project by id or as ORG/NAME (as CreateBuild names it). */
  const projectRef = (ref: string) => projects.findByRef(ref)?.id ?? null;

  /**
   * Verifies a CI JWT; every failure is audited with its reason — in the appliance's log only,
   * never an organization's: the claims are a stranger's until a trust of that organization
   * matched — and thrown as a plain 401. `projectId`: only that project's trusts are considered.
   */
  async function verify(jwt: string, ip: string | null, projectId?: string) {
    let issuer: string | null = null;
    try {
      const iss = peekJws(jwt).payload.iss;
      issuer = typeof iss === "string" ? iss : null;
      const rows = !issuer
        ? []
        : projectId === undefined
          ? byIssuer.all(issuer)
          : byIssuerAndProject.all(issuer, projectId);
      return await verifier.verify(jwt, (rows as TrustRow[]).map(toTrust));
    } catch (e) {
      if (!(e instanceof UnauthenticatedError)) throw e;
      audit.record({
        actor: "anonymous",
        action: "auth.oidc",
        outcome: "failure",
        ip,
        details: {
          reason: e.message,
          issuer: issuer?.slice(0, 200) ?? null,
          ...(projectId !== undefined ? { project: projectId } : {}),
        },
      });
      throw new UnauthenticatedError("invalid or expired credentials");
    }
  }

  function projectsOf(matched: TrustRelationship[]) {
    const ids = [...new Set(matched.map((t) => t.projectId))];
    return ids.map((projectId) => ({ projectId, orgId: projects.orgOf(projectId)! }));
  }

  return {
    list(projectId: string): TrustView[] {
      return (
        db
          .query("SELECT * FROM trust_relationships WHERE project_id = ? ORDER BY created_at")
          .all(projectId) as TrustRow[]
      ).map(toView);
    },

    get(id: string): TrustView | null {
      const r = db.query("SELECT * FROM trust_relationships WHERE id = ?").get(id) as TrustRow | null;
      return r ? toView(r) : null;
    },

    /** `input` is the API body: provider fields, issuer and audiences (defaults filled in). */
    create(projectId: string, orgId: string, input: Record<string, unknown>, actor: Actor): TrustView {
      let trust: TrustRelationship;
      try {
        trust = validateTrust({ ...input, id: newId("trs"), projectId }, allowInternal);
      } catch (e) {
        // The API spells it static_jwks; the validator speaks the model's staticJwks.
        if (e instanceof InvalidInputError)
          throw new InvalidInputError(
            e.message,
            e.errors.map((x) => ({ ...x, pointer: x.pointer.replace(/^\/staticJwks/, "/static_jwks") })),
          );
        throw e;
      }
      const {
        id,
        projectId: _p,
        provider,
        issuer,
        audiences,
        staticJwks,
        ...config
      } = trust as TrustRelationship & Record<string, unknown>;
      const at = now().toISOString();
      db.transaction(() => {
        db.query(
          "INSERT INTO trust_relationships (id, project_id, provider, issuer, audiences, config, static_jwks, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ).run(
          id,
          projectId,
          provider,
          issuer,
          JSON.stringify(audiences),
          JSON.stringify(config),
          staticJwks ? JSON.stringify(staticJwks) : null,
          actor.kind === "user" ? actor.userId : null,
          at,
        );
        audit.record({
          orgId,
          actor,
          action: "trust.create",
          target: id,
          details: { project_id: projectId, provider, issuer, audiences, ...config },
        });
      })();
      return this.get(id)!;
    },

    delete(id: string, orgId: string, actor: Actor): void {
      db.transaction(() => {
        db.query("DELETE FROM trust_relationships WHERE id = ?").run(id);
        audit.record({ orgId, actor, action: "trust.delete", target: id });
      })();
    },

    /** A raw CI JWT presented as a Bearer token: the actor for this one request. */
    async actorForJwt(jwt: string, ip: string | null = null): Promise<Actor> {
      const v = await verify(jwt, ip);
      return {
        kind: "oidc",
        tokenId: null,
        issuer: String(v.claims.iss),
        subject: String(v.claims.sub ?? "unknown").slice(0, 200),
        projects: projectsOf(v.matched),
      };
    },

    /**
     * POST /oidc/exchange: a short-lived token for one project. Bound to the project the client
     * names (only its trusts are considered), else to the one project whose trusts the token
     * matched: another tenant may add a trust for the same repository (it cannot be stopped from
     * trusting what it likes), but it must never receive this job's exchange, token or claims.
     * The audit record goes to that project's organization alone.
     */
    async exchange(
      jwt: string,
      ip: string | null,
      project?: string,
    ): Promise<{ token: string; expires_at: string; projects: string[] }> {
      // An unknown project reads as one with no trusts: this endpoint is anonymous, so it must not tell.
      const named = project === undefined ? undefined : (projectRef(project) ?? "");
      const v = await verify(jwt, ip, named);
      const projects = projectsOf(v.matched);
      const label = oidcLabel(String(v.claims.iss), String(v.claims.sub ?? "unknown").slice(0, 200));
      if (projects.length !== 1) {
        audit.record({
          actor: label,
          action: "auth.oidc.exchange",
          outcome: "failure",
          ip,
          details: { reason: `oidc: token matches trust relationships of ${projects.length} projects, none named` },
        });
        throw new InvalidInputError(
          `this token matches the trust relationships of ${projects.length} projects: name the one to act for ("project": id or ORG/NAME)`,
          [{ pointer: "/project", detail: "required" }],
        );
      }
      const [{ projectId, orgId }] = projects as [{ projectId: string; orgId: string }];
      const expiresAt = new Date(Math.min(v.expiresAt.getTime(), now().getTime() + MAX_EXCHANGED_MS));
      const created = tokens.create(
        { kind: "oidc", name: label, expiresAt, projectIds: [projectId], createdBy: null },
        label,
        ip,
      );
      audit.record({
        orgId,
        actor: label,
        action: "auth.oidc.exchange",
        target: created.metadata.id,
        ip,
        details: { issuer: v.claims.iss, project: projectId, trusts: v.matched.map((t) => t.id) },
      });
      return { token: created.token, expires_at: expiresAt.toISOString(), projects: [projectId] };
    },
  };
}
