/**
 * @module auth/authenticate.test
 * Covers bootstrapAdministrator and authServiceFactory on a real migrated SQLite file: the first
 * administrator and its token file (mode 0600), idempotent bootstrap, anonymous requests,
 * malformed headers, unknown/revoked/expired tokens (one indistinguishable error), and the
 * last_used_at bookkeeping.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { UnauthenticatedError } from "../errors.ts";
import { newId } from "../ids.ts";
import { egressServiceFactory } from "../egress/service.ts";
import { bootstrapAdministrator, INITIAL_ADMIN_TOKEN_FILE } from "../orgs/bootstrap.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import { tokensServiceFactory } from "./api-tokens.ts";
import { auditServiceFactory } from "./audit.ts";
import { authServiceFactory } from "./authenticate.ts";
import { generateToken, hashToken } from "./token-format.ts";

/** The authentication service as serve wires it: the real owners of the tables it reads. */
function authOn({ db, now }: { db: Database; now?: () => Date }) {
  const audit = auditServiceFactory({ db });
  const users = orgsServiceFactory({ db, audit });
  const runnerHosts = egressServiceFactory({ db, audit, applianceHosts: ["localhost"], extraAllow: [] });
  return authServiceFactory({
    tokens: tokensServiceFactory({ db, audit }),
    users,
    projects: projectsServiceFactory({ db, audit, orgs: users }),
    runnerHosts,
    ...(now ? { now } : {}),
  });
}

let dir: string;
let db: Database;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "slipway-auth-"));
  db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function bootstrapToken(): string {
  const r = bootstrapAdministrator(db, dir);
  expect(r.created).toBe(true);
  return readFileSync(r.tokenFile, "utf8").trim();
}

async function unauthenticatedMessage(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UnauthenticatedError);
    return (e as Error).message;
  }
  throw new Error("expected an UnauthenticatedError, but nothing was thrown");
}

const count = (table: string) => (db.query(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

describe("bootstrapAdministrator", () => {
  test("creates admin, default org, owner membership and a token file with mode 0600", () => {
    const r = bootstrapAdministrator(db, dir);
    expect(r).toEqual({
      created: true,
      tokenFile: join(dir, INITIAL_ADMIN_TOKEN_FILE),
      username: "admin",
      organization: "default",
    });
    expect(statSync(r.tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(r.tokenFile, "utf8");
    expect(token).toMatch(/^slw_u_[A-Za-z0-9]{33}\n$/);
    expect(db.query("SELECT username, is_admin FROM users").all()).toEqual([{ username: "admin", is_admin: 1 }]);
    expect(db.query("SELECT o.slug, m.role FROM memberships m JOIN organizations o ON o.id = m.org_id").all()).toEqual([
      { slug: "default", role: "owner" },
    ]);
    // Only the hash is stored.
    const row = db.query("SELECT kind, secret_sha256 FROM api_tokens").get() as {
      kind: string;
      secret_sha256: Uint8Array;
    };
    expect(row.kind).toBe("user");
    expect(Buffer.from(row.secret_sha256).equals(Buffer.from(hashToken(token.trim())))).toBe(true);
  });

  test("a second bootstrap creates nothing and leaves the token file alone", () => {
    const token = bootstrapToken();
    const again = bootstrapAdministrator(db, dir);
    expect(again).toEqual({ created: false, tokenFile: join(dir, INITIAL_ADMIN_TOKEN_FILE) });
    expect(count("users")).toBe(1);
    expect(count("organizations")).toBe(1);
    expect(count("api_tokens")).toBe(1);
    expect(readFileSync(again.tokenFile, "utf8").trim()).toBe(token);
  });

  test("when the token file cannot be written, nothing is created", () => {
    const missing = join(dir, "no-such-dir");
    expect(() => bootstrapAdministrator(db, missing)).toThrow();
    expect(count("users")).toBe(0);
    expect(count("api_tokens")).toBe(0);
    expect(existsSync(join(missing, INITIAL_ADMIN_TOKEN_FILE))).toBe(false);
    expect(bootstrapAdministrator(db, dir).created).toBe(true);
  });
});

describe("authenticate", () => {
  test("the initial admin token authenticates as the admin", async () => {
    const token = bootstrapToken();
    const auth = authOn({ db });
    const actor = await auth.authenticate(`Bearer ${token}`);
    expect(actor).toMatchObject({ kind: "user", username: "admin", isAdmin: true });
    if (actor.kind !== "user") throw new Error("unreachable");
    expect(actor.userId).toBe((db.query("SELECT id FROM users").get() as { id: string }).id);
    expect(actor.tokenId).toBe((db.query("SELECT id FROM api_tokens").get() as { id: string }).id);
    // The scheme is case-insensitive.
    expect((await auth.authenticate(`bearer ${token}`)).kind).toBe("user");
  });

  test("a non-admin user authenticates with isAdmin false", async () => {
    const userId = newId("usr");
    const token = generateToken("user");
    const at = new Date().toISOString();
    db.query("INSERT INTO users (id, username, is_admin, created_at) VALUES (?, 'bob', 0, ?)").run(userId, at);
    db.query(
      "INSERT INTO api_tokens (id, kind, secret_sha256, name, user_id, created_at) VALUES (?, 'user', ?, 't', ?, ?)",
    ).run(newId("tok"), hashToken(token), userId, at);
    expect(await authOn({ db }).authenticate(`Bearer ${token}`)).toMatchObject({
      kind: "user",
      username: "bob",
      isAdmin: false,
      userId,
    });
  });

  test("no header is anonymous", async () => {
    const auth = authOn({ db });
    expect(await auth.authenticate(null)).toEqual({ kind: "anonymous" });
    expect(await auth.authenticate("")).toEqual({ kind: "anonymous" });
  });

  test("a header that is not Bearer is rejected", async () => {
    const token = bootstrapToken();
    const auth = authOn({ db });
    expect(await unauthenticatedMessage(() => auth.authenticate("Basic x"))).toContain("Bearer");
    await unauthenticatedMessage(() => auth.authenticate(token));
    await unauthenticatedMessage(() => auth.authenticate(`Bearer ${token} extra`));
  });

  test("unknown, malformed, revoked and expired tokens fail with the same message", async () => {
    const token = bootstrapToken();
    const auth = authOn({ db });
    const messages = new Set<string>();
    messages.add(await unauthenticatedMessage(() => auth.authenticate(`Bearer ${generateToken("user")}`)));
    messages.add(await unauthenticatedMessage(() => auth.authenticate("Bearer not-a-slipway-token")));

    db.query("UPDATE api_tokens SET expires_at = ?").run(new Date(Date.now() - 1000).toISOString());
    messages.add(await unauthenticatedMessage(() => auth.authenticate(`Bearer ${token}`)));

    db.query("UPDATE api_tokens SET expires_at = ?").run(new Date(Date.now() + 3_600_000).toISOString());
    expect((await auth.authenticate(`Bearer ${token}`)).kind).toBe("user"); // not yet expired: fine

    db.query("UPDATE api_tokens SET revoked_at = ?").run(new Date().toISOString());
    messages.add(await unauthenticatedMessage(() => auth.authenticate(`Bearer ${token}`)));

    expect([...messages]).toEqual(["invalid or expired credentials"]);
  });

  test("a token expires exactly at expires_at, by the injected clock", async () => {
    const token = bootstrapToken();
    const expiry = new Date("2031-01-01T00:00:00.000Z");
    db.query("UPDATE api_tokens SET expires_at = ?").run(expiry.toISOString());
    expect((await authOn({ db, now: () => new Date(expiry.getTime() - 1) }).authenticate(`Bearer ${token}`)).kind).toBe(
      "user",
    );
    await unauthenticatedMessage(() => authOn({ db, now: () => expiry }).authenticate(`Bearer ${token}`));
  });

  test("last_used_at is set on use, and refreshed at most once a minute", async () => {
    const token = bootstrapToken();
    const lastUsed = () =>
      (db.query("SELECT last_used_at FROM api_tokens").get() as { last_used_at: string | null }).last_used_at;
    expect(lastUsed()).toBeNull();
    let t = new Date("2030-05-05T10:00:00.000Z");
    const auth = authOn({ db, now: () => t });
    await auth.authenticate(`Bearer ${token}`);
    expect(lastUsed()).toBe("2030-05-05T10:00:00.000Z");
    t = new Date("2030-05-05T10:00:30.000Z");
    await auth.authenticate(`Bearer ${token}`);
    expect(lastUsed()).toBe("2030-05-05T10:00:00.000Z");
    t = new Date("2030-05-05T10:01:01.000Z");
    await auth.authenticate(`Bearer ${token}`);
    expect(lastUsed()).toBe("2030-05-05T10:01:01.000Z");
  });

  test("build tokens are not touched (their build's health reports say when it was last heard from)", async () => {
    bootstrapToken();
    const org = (db.query("SELECT id FROM organizations LIMIT 1").get() as { id: string }).id;
    db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES ('prj_t', ?, 't', ?)").run(
      org,
      new Date().toISOString(),
    );
    db.query(
      "INSERT INTO builds (id, project_id, org_id, status, started_by, options, created_at, deadline_at) VALUES ('bld_t', 'prj_t', ?, 'created', 'test', '[]', ?, ?)",
    ).run(org, new Date().toISOString(), new Date(Date.now() + 3600_000).toISOString());
    const token = generateToken("build");
    db.query(
      "INSERT INTO api_tokens (id, kind, secret_sha256, name, project_id, build_id, created_at) VALUES ('tok_b', 'build', ?, 'b', 'prj_t', 'bld_t', ?)",
    ).run(hashToken(token), new Date().toISOString());
    expect(await authOn({ db }).authenticate(`Bearer ${token}`)).toMatchObject({
      kind: "build-token",
      buildId: "bld_t",
      projectId: "prj_t",
    });
    expect(
      (db.query("SELECT last_used_at FROM api_tokens WHERE id = 'tok_b'").get() as { last_used_at: string | null })
        .last_used_at,
    ).toBeNull();
  });

  test("a failed authentication does not touch last_used_at", async () => {
    const token = bootstrapToken();
    db.query("UPDATE api_tokens SET revoked_at = ?").run(new Date().toISOString());
    await unauthenticatedMessage(() => authOn({ db }).authenticate(`Bearer ${token}`));
    expect(
      (db.query("SELECT last_used_at FROM api_tokens").get() as { last_used_at: string | null }).last_used_at,
    ).toBeNull();
  });
});
