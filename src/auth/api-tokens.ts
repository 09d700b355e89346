/**
 * @module auth/api-tokens
 * The api_tokens table's owner: creating, listing, revoking and pruning API tokens, and finding
 * one by its hash. The secret is returned once, at creation; only its SHA-256 is stored. Listing
 * returns metadata only. A token never mints one that outlives it: with no expiry asked, the new
 * token expires with the token that made it; a later expiry is refused (otherwise an organization
 * token, or a phished user token, could make itself permanent).
 */
import type { Database } from "bun:sqlite";
import { InvalidInputError, NotFoundError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Actor } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import { generateToken, hashToken, type TokenKind } from "./token-format.ts";

export interface TokenMetadata {
  id: string;
  kind: TokenKind;
  name: string;
  user_id: string | null;
  org_id: string | null;
  project_id: string | null;
  created_by: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface NewToken {
  kind: Exclude<TokenKind, "build" | "agent">;
  name: string;
  expiresAt: Date | null;
  userId?: string;
  /** For org tokens; also recorded on project tokens for listing and audit. */
  orgId?: string;
  projectId?: string;
  /** OIDC-exchanged tokens: every project whose trust relationship matched. */
  projectIds?: string[];
  createdBy: string | null;
}

/** A stored token as authentication reads it (auth/authenticate). */
export interface StoredToken {
  id: string;
  kind: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  user_id: string | null;
  org_id: string | null;
  project_id: string | null;
  build_id: string | null;
}

const actorUserId = (actor: Actor): string | null => (actor.kind === "user" ? actor.userId : null);

const COLUMNS =
  "id, kind, name, user_id, org_id, project_id, created_by, created_at, expires_at, last_used_at, revoked_at";

export type TokensService = ReturnType<typeof tokensServiceFactory>;

export function tokensServiceFactory({
  db,
  audit,
  now = () => new Date(),
}: {
  db: Database;
  audit: Pick<AuditService, "record">;
  now?: () => Date;
}) {
  const byId = db.query(`SELECT ${COLUMNS} FROM api_tokens WHERE id = ?`);
  const expiryOf = db.query("SELECT expires_at FROM api_tokens WHERE id = ?");
  const insertBuildToken = db.query(
    "INSERT INTO api_tokens (id, kind, secret_sha256, name, project_id, build_id, created_at, expires_at) VALUES (?, 'build', ?, ?, ?, ?, ?, ?)",
  );
  const bySecretHash = db.query(
    "SELECT id, kind, expires_at, revoked_at, last_used_at, user_id, org_id, project_id, build_id FROM api_tokens WHERE secret_sha256 = ?",
  );
  const tokenProjects = db.query("SELECT project_id FROM api_token_projects WHERE token_id = ?");
  const touchStmt = db.query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?");
  const pruneStmt = db.query(
    `DELETE FROM api_tokens WHERE id IN (
       SELECT id FROM api_tokens WHERE expires_at < ?1
       UNION SELECT id FROM api_tokens WHERE revoked_at < ?1 LIMIT ?2)`,
  );

  /** When the credential making the request expires: its stored token's expiry; null for none
   * (a session, an administrator's token without expiry, a raw OIDC JWT that cannot mint). */
  const parentExpiry = (actor: Actor): Date | null => {
    if (actor.kind === "anonymous" || !actor.tokenId) return null;
    const row = expiryOf.get(actor.tokenId) as { expires_at: string | null } | null;
    return row?.expires_at ? new Date(row.expires_at) : null;
  };

  function expiryWithin(asked: Date | null, parent: Date | null): Date | null {
    if (!parent) return asked;
    if (!asked) return parent;
    if (asked.getTime() > parent.getTime()) {
      throw new InvalidInputError(
        `expires_at must not be later than the expiry of the token making this request (${parent.toISOString()}): a token cannot outlive the one that made it`,
        [{ pointer: "/expires_at", detail: `at most ${parent.toISOString()}` }],
      );
    }
    return asked;
  }

  return {
    get(id: string): TokenMetadata {
      const t = byId.get(id) as TokenMetadata | null;
      if (!t) throw new NotFoundError("no such token");
      return t;
    },

    /** Returns the secret once; it is never stored or shown again. */
    create(
      input: NewToken,
      actor: Actor | string,
      ip: string | null = null,
    ): { token: string; metadata: TokenMetadata } {
      const expiresAt = expiryWithin(input.expiresAt, typeof actor === "string" ? null : parentExpiry(actor));
      if (expiresAt !== input.expiresAt) input = { ...input, expiresAt };
      const token = generateToken(input.kind);
      const id = newId("tok");
      const at = now().toISOString();
      db.transaction(() => {
        db.query(
          "INSERT INTO api_tokens (id, kind, secret_sha256, name, user_id, org_id, project_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ).run(
          id,
          input.kind,
          hashToken(token),
          input.name,
          input.userId ?? null,
          input.orgId ?? null,
          input.projectId ?? null,
          input.createdBy,
          at,
          input.expiresAt?.toISOString() ?? null,
        );
        for (const p of input.projectIds ?? [])
          db.query("INSERT INTO api_token_projects (token_id, project_id) VALUES (?, ?)").run(id, p);
        audit.record({
          orgId: input.orgId ?? null,
          actor,
          action: "token.create",
          target: id,
          ip,
          details: {
            kind: input.kind,
            name: input.name,
            project_id: input.projectId ?? null,
            expires_at: input.expiresAt?.toISOString() ?? null,
          },
        });
      })();
      return { token, metadata: this.get(id) };
    },

    /** The first administrator's user token (orgs/bootstrap); not audited, as no actor exists yet. Returns the secret. */
    issueInitialAdminToken(userId: string): string {
      const token = generateToken("user");
      db.query(
        "INSERT INTO api_tokens (id, kind, secret_sha256, name, user_id, created_at) VALUES (?, 'user', ?, 'initial-admin', ?, ?)",
      ).run(newId("tok"), hashToken(token), userId, now().toISOString());
      return token;
    },

    /** A build's own token, made in the build's creating transaction: it expires at `expiresAt`
     * and acts on that build only. Returns the secret (shown once, to the build's client). */
    issueBuildToken(build: { id: string; projectId: string }, expiresAt: Date): string {
      const token = generateToken("build");
      insertBuildToken.run(
        newId("tok"),
        hashToken(token),
        `build ${build.id}`,
        build.projectId,
        build.id,
        now().toISOString(),
        expiresAt.toISOString(),
      );
      return token;
    },

    /** The stored token whose secret hashes to `sha256` (authentication), or null. */
    findBySecretHash(sha256: Uint8Array): StoredToken | null {
      return bySecretHash.get(sha256) as StoredToken | null;
    },

    /** The projects an OIDC-exchanged token acts on. */
    projectIdsOf(tokenId: string): string[] {
      return (tokenProjects.all(tokenId) as { project_id: string }[]).map((r) => r.project_id);
    },

    /** Records a use (advisory: callers write it at most once a minute per token). */
    touch(id: string, at: Date): void {
      touchStmt.run(at.toISOString(), id);
    },

    /** Deletes at most `limit` tokens that expired or were revoked before `cutoff` (retention); returns how many. */
    pruneEnded(cutoff: Date, limit: number): number {
      return pruneStmt.run(cutoff.toISOString(), limit).changes;
    },

    /** Kind and name of each of these tokens that still exists, in one query (build lists show who started a build). */
    namesOf(ids: readonly string[]): Map<string, { kind: string; name: string }> {
      if (ids.length === 0) return new Map();
      const rows = db
        .query("SELECT id, kind, name FROM api_tokens WHERE id IN (SELECT value FROM json_each(?))")
        .all(JSON.stringify(ids)) as { id: string; kind: string; name: string }[];
      return new Map(rows.map((r) => [r.id, { kind: r.kind, name: r.name }]));
    },

    /** Ids of the tokens CI jobs exchanged their OIDC token for (a build list's "started by CI"). */
    exchangedIds(): string[] {
      return (db.query("SELECT id FROM api_tokens WHERE kind = 'oidc'").all() as { id: string }[]).map((r) => r.id);
    },

    listForUser(userId: string): TokenMetadata[] {
      return db
        .query(`SELECT ${COLUMNS} FROM api_tokens WHERE kind = 'user' AND user_id = ? ORDER BY created_at`)
        .all(userId) as TokenMetadata[];
    },

    /** Organization tokens and project tokens of an organization. */
    listForOrg(orgId: string): TokenMetadata[] {
      return db
        .query(`SELECT ${COLUMNS} FROM api_tokens WHERE kind IN ('org', 'project') AND org_id = ? ORDER BY created_at`)
        .all(orgId) as TokenMetadata[];
    },

    /** The project tokens of one project (what its Tokens page lists). */
    listForProject(projectId: string): TokenMetadata[] {
      return db
        .query(`SELECT ${COLUMNS} FROM api_tokens WHERE kind = 'project' AND project_id = ? ORDER BY created_at`)
        .all(projectId) as TokenMetadata[];
    },

    /**
     * An administrator's reset of a user's API access: every live user token of theirs is revoked
     * and one new token issued, in one transaction (a reset is asked for when a token is lost or
     * leaked: leaving the old ones working would defeat it). Their web sessions are untouched.
     */
    resetUserTokens(
      userId: string,
      actor: Actor,
      ip: string | null = null,
    ): { token: string; metadata: TokenMetadata; revoked: string[] } {
      const live = (
        db
          .query(
            "SELECT id FROM api_tokens WHERE kind = 'user' AND user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
          )
          .all(userId, now().toISOString()) as { id: string }[]
      ).map((r) => r.id);
      return db.transaction(() => {
        for (const id of live) this.revoke(id, actor, ip);
        const created = this.create(
          { kind: "user", name: "reset by administrator", expiresAt: null, userId, createdBy: actorUserId(actor) },
          actor,
          ip,
        );
        return { ...created, revoked: live };
      })();
    },

    revoke(id: string, actor: Actor, ip: string | null = null): TokenMetadata {
      const t = this.get(id);
      if (!t.revoked_at) {
        db.transaction(() => {
          db.query("UPDATE api_tokens SET revoked_at = ? WHERE id = ?").run(now().toISOString(), id);
          audit.record({
            orgId: t.org_id,
            actor,
            action: "token.revoke",
            target: id,
            ip,
            details: { kind: t.kind, name: t.name },
          });
        })();
      }
      return this.get(id);
    },
  };
}
