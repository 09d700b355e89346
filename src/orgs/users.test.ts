/**
 * @module orgs/users.test
 * The administrator's user management against a real SQLite database with the migrations:
 * every user listed, an administrator made and unmade (the last one kept, and audited), and a
 * token reset that revokes every live user token of theirs and issues one new one, together.
 */
import type { Database } from "bun:sqlite";
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Actor } from "../auth/actor.ts";
import { tokensServiceFactory, type TokensService } from "../auth/api-tokens.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { ConflictError } from "../errors.ts";
import { orgsServiceFactory, type OrgsService } from "./service.ts";

const dir = mkdtempSync(join(tmpdir(), "users-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let db: Database;
let orgs: OrgsService;
let tokens: TokensService;
let admin: Actor;
let n = 0;

beforeEach(() => {
  db = openDatabase(join(dir, `db-${++n}.sqlite`));
  applyMigrations(db);
  const audit = auditServiceFactory({ db });
  orgs = orgsServiceFactory({ db, audit });
  tokens = tokensServiceFactory({ db, audit });
  const { userId } = orgs.createFirstAdministrator();
  admin = { kind: "user", userId, username: "admin", isAdmin: true, tokenId: null, memberships: {} };
});

const audited = (action: string) =>
  (db.query("SELECT count(*) AS n FROM audit_log WHERE action = ?").get(action) as { n: number }).n;

describe("users", () => {
  test("every user, by name", () => {
    orgs.createUser({ username: "zed" }, admin);
    orgs.createUser({ username: "bob", isAdmin: true }, admin);
    expect(orgs.listUsers().map((u) => [u.username, u.is_admin])).toEqual([
      ["admin", true],
      ["bob", true],
      ["zed", false],
    ]);
  });

  test("an administrator is made and unmade; the last one stays", () => {
    const bob = orgs.createUser({ username: "bob" }, admin);
    expect(() => orgs.setAdmin("admin", false, admin)).toThrow(ConflictError);
    expect(orgs.getUser("admin").is_admin).toBe(true);
    expect(orgs.setAdmin(bob.id, true, admin).is_admin).toBe(true);
    expect(orgs.setAdmin("admin", false, admin).is_admin).toBe(false);
    expect(() => orgs.setAdmin("bob", false, admin)).toThrow(/at least one administrator/);
    expect(audited("user.admin")).toBe(2);
  });

  test("a token reset revokes every live user token of theirs and issues one new one", () => {
    const bob = orgs.createUser({ username: "bob" }, admin);
    const bobActor: Actor = { ...admin, userId: bob.id, username: "bob", isAdmin: false } as Actor;
    const a = tokens.create({ kind: "user", name: "a", expiresAt: null, userId: bob.id, createdBy: bob.id }, bobActor);
    const b = tokens.create({ kind: "user", name: "b", expiresAt: null, userId: bob.id, createdBy: bob.id }, bobActor);
    const mine = tokens.create(
      {
        kind: "user",
        name: "admin's",
        expiresAt: null,
        userId: admin.kind === "user" ? admin.userId : "",
        createdBy: null,
      },
      admin,
    );
    const reset = tokens.resetUserTokens(bob.id, admin, "127.0.0.1");
    expect(reset.revoked.sort()).toEqual([a.metadata.id, b.metadata.id].sort());
    expect(reset.metadata.user_id).toBe(bob.id);
    expect(reset.metadata.revoked_at).toBeNull();
    expect(tokens.get(a.metadata.id).revoked_at).not.toBeNull();
    expect(tokens.get(b.metadata.id).revoked_at).not.toBeNull();
    expect(tokens.get(mine.metadata.id).revoked_at).toBeNull(); // nobody else's
    expect(reset.token).not.toBe(a.token);
  });
});
