/**
 * @module orgs/service
 * Users, organizations and memberships. An organization always keeps at least one owner.
 * Every change is audited; authorization happens in the routes, through the policy.
 */
import type { Database } from "bun:sqlite";
import type { Actor, Role } from "../auth/actor.ts";
import type { AuditService } from "../auth/audit.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../errors.ts";
import { isUniqueViolation } from "../db/index.ts";
import { newId } from "../ids.ts";

import { USERNAME_PATTERN } from "./models.ts";

export { USERNAME_PATTERN }; // the API's models define it

export interface Organization {
  id: string;
  slug: string;
  name: string;
  created_at: string;
}

export interface Member {
  user_id: string;
  username: string;
  role: Role;
  created_at: string;
}

export interface User {
  id: string;
  username: string;
  is_admin: boolean;
  created_at: string;
}

export interface OrgsDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  now?: () => Date;
}

export type OrgsService = ReturnType<typeof orgsServiceFactory>;

// Over 120 lines as a whole: a service factory, whose methods (each short) are the units; the
// closure only shares prepared statements.
export function orgsServiceFactory({ db, audit, now = () => new Date() }: OrgsDeps) {
  const orgBy = db.query("SELECT id, slug, name, created_at FROM organizations WHERE id = ?1 OR slug = ?1");
  const userBy = db.query("SELECT id, username, is_admin, created_at FROM users WHERE id = ?1 OR username = ?1");
  const owners = db.query("SELECT count(*) AS n FROM memberships WHERE org_id = ? AND role = 'owner'");
  const membership = db.query("SELECT role FROM memberships WHERE org_id = ? AND user_id = ?");
  const userById = db.query("SELECT id, username, is_admin, created_at FROM users WHERE id = ?");
  const membershipsOf = db.query("SELECT org_id, role FROM memberships WHERE user_id = ?");
  const toUser = (u: { id: string; username: string; is_admin: number; created_at: string }): User => ({
    ...u,
    is_admin: u.is_admin === 1,
  });

  function getUser(ref: string): User {
    const u = userBy.get(ref) as { id: string; username: string; is_admin: number; created_at: string } | null;
    if (!u) throw new NotFoundError(`no such user: ${ref}`);
    return toUser(u);
  }

  return {
    /** By id or slug. */
    get(ref: string): Organization {
      const o = orgBy.get(ref) as Organization | null;
      if (!o) throw new NotFoundError("no such organization");
      return o;
    },

    /** The id of the organization with this slug, or null. */
    findIdBySlug(slug: string): string | null {
      return (db.query("SELECT id FROM organizations WHERE slug = ?").get(slug) as { id: string } | null)?.id ?? null;
    },

    /** The organizations an actor can see. */
    listFor(actor: Actor): Organization[] {
      if (actor.kind === "user" && actor.isAdmin)
        return db.query("SELECT id, slug, name, created_at FROM organizations ORDER BY slug").all() as Organization[];
      const ids =
        actor.kind === "user" ? Object.keys(actor.memberships) : actor.kind === "org-token" ? [actor.orgId] : [];
      if (ids.length === 0) return [];
      return db
        .query(
          `SELECT id, slug, name, created_at FROM organizations WHERE id IN (${ids.map(() => "?").join(",")}) ORDER BY slug`,
        )
        .all(...ids) as Organization[];
    },

    create(input: { slug: string; name: string; owner?: string }, actor: Actor): Organization {
      const ownerUser = input.owner ? getUser(input.owner) : actor.kind === "user" ? getUser(actor.userId) : null;
      if (!ownerUser)
        throw new InvalidInputError("an organization needs an owner", [
          { pointer: "/owner", detail: "name the user who will own it" },
        ]);
      const org: Organization = {
        id: newId("org"),
        slug: input.slug,
        name: input.name,
        created_at: now().toISOString(),
      };
      try {
        db.transaction(() => {
          db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)").run(
            org.id,
            org.slug,
            org.name,
            org.created_at,
          );
          db.query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, 'owner', ?)").run(
            org.id,
            ownerUser.id,
            org.created_at,
          );
          audit.record({
            orgId: org.id,
            actor,
            action: "org.create",
            target: org.id,
            details: { slug: org.slug, owner: ownerUser.id },
          });
        })();
      } catch (e) {
        if (isUniqueViolation(e)) throw new ConflictError(`an organization with slug '${input.slug}' already exists`);
        throw e;
      }
      return org;
    },

    update(orgId: string, patch: { name?: string }, actor: Actor): Organization {
      // The change and its audit record commit together, as everywhere else in this service.
      db.transaction(() => {
        if (patch.name !== undefined) db.query("UPDATE organizations SET name = ? WHERE id = ?").run(patch.name, orgId);
        audit.record({ orgId, actor, action: "org.update", target: orgId, details: patch });
      })();
      return this.get(orgId);
    },

    /** The OCI runtime the organization's builders run under (null: the engine's default). */
    builderRuntime(orgId: string): string | null {
      return (
        (
          db.query("SELECT builder_oci_runtime AS r FROM organizations WHERE id = ?").get(orgId) as {
            r: string | null;
          } | null
        )?.r ?? null
      );
    },

    setBuilderRuntime(orgId: string, runtime: string | null, actor: Actor): void {
      db.transaction(() => {
        db.query("UPDATE organizations SET builder_oci_runtime = ? WHERE id = ?").run(runtime, orgId);
        audit.record({ orgId, actor, action: "org.builder-runtime", target: orgId, details: { oci_runtime: runtime } });
      })();
    },

    listMembers(orgId: string): Member[] {
      return db
        .query(
          "SELECT m.user_id, u.username, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY u.username",
        )
        .all(orgId) as Member[];
    },

    addMember(orgId: string, userRef: string, role: Role, actor: Actor): Member {
      const user = getUser(userRef);
      const at = now().toISOString();
      try {
        db.transaction(() => {
          db.query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)").run(
            orgId,
            user.id,
            role,
            at,
          );
          audit.record({ orgId, actor, action: "member.add", target: user.id, details: { role } });
        })();
      } catch (e) {
        if (isUniqueViolation(e)) throw new ConflictError(`${user.username} is already a member`);
        throw e;
      }
      return { user_id: user.id, username: user.username, role, created_at: at };
    },

    setRole(orgId: string, userRef: string, role: Role, actor: Actor): Member {
      const user = getUser(userRef);
      db.transaction(() => {
        const current = membership.get(orgId, user.id) as { role: Role } | null;
        if (!current) throw new NotFoundError(`${user.username} is not a member`);
        if (current.role === "owner" && role !== "owner" && (owners.get(orgId) as { n: number }).n <= 1) {
          throw new ConflictError("an organization must keep at least one owner; make someone else owner first");
        }
        db.query("UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?").run(role, orgId, user.id);
        audit.record({
          orgId,
          actor,
          action: "member.role",
          target: user.id,
          details: { from: current.role, to: role },
        });
      })();
      return this.listMembers(orgId).find((m) => m.user_id === user.id)!;
    },

    removeMember(orgId: string, userRef: string, actor: Actor): void {
      const user = getUser(userRef);
      db.transaction(() => {
        const current = membership.get(orgId, user.id) as { role: Role } | null;
        if (!current) throw new NotFoundError(`${user.username} is not a member`);
        if (current.role === "owner" && (owners.get(orgId) as { n: number }).n <= 1) {
          throw new ConflictError("an organization must keep at least one owner; make someone else owner first");
        }
        db.query("DELETE FROM memberships WHERE org_id = ? AND user_id = ?").run(orgId, user.id);
        // Their user tokens keep working elsewhere; nothing of theirs stays in this organization.
        audit.record({ orgId, actor, action: "member.remove", target: user.id, details: { role: current.role } });
      })();
    },

    getUser,

    /** A user's id by exact username, or null (the audit log's filter by who acted). */
    userIdByUsername(username: string): string | null {
      return (db.query("SELECT id FROM users WHERE username = ?").get(username) as { id: string } | null)?.id ?? null;
    },

    /** How the audit log names the users and organizations among `ids` that exist: usernames and slugs. */
    displayNames(ids: string[]): Map<string, string> {
      if (ids.length === 0) return new Map();
      const rows = db
        .query(
          `SELECT id, username AS name FROM users WHERE id IN (SELECT value FROM json_each(?1))
           UNION ALL SELECT id, slug AS name FROM organizations WHERE id IN (SELECT value FROM json_each(?1))`,
        )
        .all(JSON.stringify([...new Set(ids)])) as { id: string; name: string }[];
      return new Map(rows.map((r) => [r.id, r.name]));
    },

    /** The user's password hash (null: none set), or null for no such user (auth/sessions). */
    passwordHashOf(userId: string): { password_hash: string | null } | null {
      return db.query("SELECT password_hash FROM users WHERE id = ?").get(userId) as {
        password_hash: string | null;
      } | null;
    },

    passwordHashByUsername(username: string): { id: string; password_hash: string | null } | null {
      return db.query("SELECT id, password_hash FROM users WHERE username = ?").get(username) as {
        id: string;
        password_hash: string | null;
      } | null;
    },

    /** Stores a password hash made by auth/sessions (the password itself never comes here). */
    setPasswordHash(userId: string, hash: string): void {
      db.query("UPDATE users SET password_hash = ? WHERE id = ?").run(hash, userId);
    },

    /** Every user, by name (the administrator's list). */
    listUsers(): User[] {
      return (
        db.query("SELECT id, username, is_admin, created_at FROM users ORDER BY username").all() as {
          id: string;
          username: string;
          is_admin: number;
          created_at: string;
        }[]
      ).map(toUser);
    },

    /** Makes or unmakes an administrator; the appliance always keeps one (nobody could create
     * users or organizations otherwise). */
    setAdmin(userRef: string, isAdmin: boolean, actor: Actor): User {
      const user = getUser(userRef);
      db.transaction(() => {
        if (user.is_admin && !isAdmin) {
          const { n } = db.query("SELECT count(*) AS n FROM users WHERE is_admin = 1").get() as { n: number };
          if (n <= 1)
            throw new ConflictError(
              "the appliance must keep at least one administrator; make someone else administrator first",
            );
        }
        db.query("UPDATE users SET is_admin = ? WHERE id = ?").run(isAdmin ? 1 : 0, user.id);
        audit.record({ actor, action: "user.admin", target: user.id, details: { from: user.is_admin, to: isAdmin } });
      })();
      return getUser(user.id);
    },

    userCount(): number {
      return (db.query("SELECT count(*) AS n FROM users").get() as { n: number }).n;
    },

    /** First start (orgs/bootstrap): the administrator `admin`, the organization `default` and
     * its ownership. Not audited, as no actor exists yet. */
    createFirstAdministrator(): { userId: string; orgId: string } {
      const at = now().toISOString();
      const userId = newId("usr");
      const orgId = newId("org");
      db.transaction(() => {
        db.query("INSERT INTO users (id, username, is_admin, created_at) VALUES (?, 'admin', 1, ?)").run(userId, at);
        db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, 'default', 'Default', ?)").run(
          orgId,
          at,
        );
        db.query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, 'owner', ?)").run(
          orgId,
          userId,
          at,
        );
      })();
      return { userId, orgId };
    },

    /** The username of each of these users that exists, in one query (build lists show who started a build). */
    usernamesOf(ids: readonly string[]): Map<string, string> {
      if (ids.length === 0) return new Map();
      const rows = db
        .query("SELECT id, username FROM users WHERE id IN (SELECT value FROM json_each(?))")
        .all(JSON.stringify(ids)) as { id: string; username: string }[];
      return new Map(rows.map((r) => [r.id, r.username]));
    },

    /** A user by id with their memberships, or null (authentication builds the actor from it). */
    userWithMemberships(userId: string): (User & { memberships: { org_id: string; role: Role }[] }) | null {
      const u = userById.get(userId) as { id: string; username: string; is_admin: number; created_at: string } | null;
      return u ? { ...toUser(u), memberships: membershipsOf.all(userId) as { org_id: string; role: Role }[] } : null;
    },

    createUser(input: { username: string; isAdmin?: boolean }, actor: Actor | string): User {
      if (!new RegExp(USERNAME_PATTERN).test(input.username)) {
        throw new InvalidInputError(`invalid username ${JSON.stringify(input.username)}`, [
          { pointer: "/username", detail: "a letter or digit, then letters, digits, '.', '_' or '-'; at most 64" },
        ]);
      }
      const user = {
        id: newId("usr"),
        username: input.username,
        is_admin: input.isAdmin ?? false,
        created_at: now().toISOString(),
      };
      try {
        db.transaction(() => {
          db.query("INSERT INTO users (id, username, is_admin, created_at) VALUES (?, ?, ?, ?)").run(
            user.id,
            user.username,
            user.is_admin ? 1 : 0,
            user.created_at,
          );
          audit.record({
            actor,
            action: "user.create",
            target: user.id,
            details: { username: user.username, is_admin: user.is_admin },
          });
        })();
      } catch (e) {
        if (isUniqueViolation(e)) throw new ConflictError(`user '${input.username}' already exists`);
        throw e;
      }
      return user;
    },
  };
}
