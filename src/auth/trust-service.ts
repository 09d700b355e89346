/**
 * @module auth/trust-service
 * Trust relationships stored per project, and the CI side of authentication: a raw OIDC JWT is
 * verified against the trusts of its issuer and becomes an actor scoped to the projects whose
 * trusts it matched; `exchange` turns it into a short-lived Slipway token. Rejections are
 * audited with their precise reason; callers only ever see "invalid or expired credentials".
 */
import type { Database } from "bun:sqlite";
import { InvalidInputError, UnauthenticatedError } from "../errors.ts";
import { newId } from "../ids.ts";
import { oidcLabel, type Actor } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import { peekJws } from "./oidc/jwt.ts";
import { validateTrust, type CiTokenVerifier, type InternalAllowance, type TrustRelationship } from "./oidc/index.ts";
import type { TokensService } from "./token-service.ts";

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
  /** Issuers the operator allows on internal addresses: an issuer URL is checked against it when a trust is added. */
  allowInternal?: InternalAllowance;
  now?: () => Date;
}

export type TrustService = ReturnType<typeof trustServiceFactory>;

export function trustServiceFactory({ db, audit, verifier, tokens, allowInternal, now = () => new Date() }: TrustDeps) {
  const byIssuer = db.query("SELECT * FROM trust_relationships WHERE issuer = ?");
  const projectOrg = db.query("SELECT org_id FROM projects WHERE id = ?");

  /** Verifies a CI JWT; every failure is audited with its reason and thrown as a plain 401. */
  async function verify(jwt: string, ip: string | null) {
    let issuer: string | null = null;
    try {
      const iss = peekJws(jwt).payload.iss;
      issuer = typeof iss === "string" ? iss : null;
      const trusts = issuer ? (byIssuer.all(issuer) as TrustRow[]).map(toTrust) : [];
      return await verifier.verify(jwt, trusts);
    } catch (e) {
      if (!(e instanceof UnauthenticatedError)) throw e;
      audit.record({ actor: "anonymous", action: "auth.oidc", outcome: "failure", ip, details: { reason: e.message, issuer: issuer?.slice(0, 200) ?? null } });
      throw new UnauthenticatedError("invalid or expired credentials");
    }
  }

  function projectsOf(matched: TrustRelationship[]) {
    const ids = [...new Set(matched.map((t) => t.projectId))];
    return ids.map((projectId) => ({ projectId, orgId: (projectOrg.get(projectId) as { org_id: string }).org_id }));
  }

  return {
    list(projectId: string): TrustView[] {
      return (db.query("SELECT * FROM trust_relationships WHERE project_id = ? ORDER BY created_at").all(projectId) as TrustRow[]).map(toView);
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
        if (e instanceof InvalidInputError) throw new InvalidInputError(e.message, e.errors.map((x) => ({ ...x, pointer: x.pointer.replace(/^\/staticJwks/, "/static_jwks") })));
        throw e;
      }
      const { id, projectId: _p, provider, issuer, audiences, staticJwks, ...config } = trust as TrustRelationship & Record<string, unknown>;
      const at = now().toISOString();
      db.transaction(() => {
        db.query("INSERT INTO trust_relationships (id, project_id, provider, issuer, audiences, config, static_jwks, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").run(
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
        audit.record({ orgId, actor, action: "trust.create", target: id, details: { project_id: projectId, provider, issuer, audiences, ...config } });
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
      return { kind: "oidc", tokenId: null, issuer: String(v.claims.iss), subject: String(v.claims.sub ?? "unknown").slice(0, 200), projects: projectsOf(v.matched) };
    },

    /** POST /oidc/exchange: a short-lived token for the matched projects. */
    async exchange(jwt: string, ip: string | null): Promise<{ token: string; expires_at: string; projects: string[] }> {
      const v = await verify(jwt, ip);
      const projects = projectsOf(v.matched);
      const expiresAt = new Date(Math.min(v.expiresAt.getTime(), now().getTime() + MAX_EXCHANGED_MS));
      const label = oidcLabel(String(v.claims.iss), String(v.claims.sub ?? "unknown").slice(0, 200));
      const created = tokens.create({ kind: "oidc", name: label, expiresAt, projectIds: projects.map((p) => p.projectId), createdBy: null }, label, ip);
      for (const orgId of new Set(projects.map((p) => p.orgId))) {
        audit.record({ orgId, actor: label, action: "auth.oidc.exchange", target: created.metadata.id, ip, details: { issuer: v.claims.iss, trusts: v.matched.map((t) => t.id) } });
      }
      return { token: created.token, expires_at: expiresAt.toISOString(), projects: projects.map((p) => p.projectId) };
    },
  };
}
