/**
 * @module auth/bootstrap
 * First start: when no user exists, create the instance administrator, the first organization
 * (the administrator owns it) and a user token for the administrator, written to
 * `<data-dir>/initial-admin-token` with mode 0600. All in one transaction; the file is written
 * inside it, so either both exist or neither does.
 */
import type { Database } from "bun:sqlite";
import { join } from "node:path";
import { writeFileAtomic } from "../fs/atomic.ts";
import { newId } from "../ids.ts";
import { generateToken, hashToken } from "./token-format.ts";

export const INITIAL_ADMIN_TOKEN_FILE = "initial-admin-token";

export interface BootstrapResult {
  created: boolean;
  tokenFile: string;
  username?: string;
  organization?: string;
}

export function bootstrapAdministrator(db: Database, dataDir: string, now = new Date()): BootstrapResult {
  const tokenFile = join(dataDir, INITIAL_ADMIN_TOKEN_FILE);
  return db.transaction((): BootstrapResult => {
    const users = (db.query("SELECT count(*) AS n FROM users").get() as { n: number }).n;
    if (users > 0) return { created: false, tokenFile };
    const at = now.toISOString();
    const userId = newId("usr");
    const orgId = newId("org");
    const token = generateToken("user");
    db.query("INSERT INTO users (id, username, is_admin, created_at) VALUES (?, 'admin', 1, ?)").run(userId, at);
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, 'default', 'Default', ?)").run(orgId, at);
    db.query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, 'owner', ?)").run(orgId, userId, at);
    db.query("INSERT INTO api_tokens (id, kind, secret_sha256, name, user_id, created_at) VALUES (?, 'user', ?, 'initial-admin', ?, ?)").run(
      newId("tok"),
      hashToken(token),
      userId,
      at,
    );
    writeFileAtomic(tokenFile, token + "\n", 0o600);
    return { created: true, tokenFile, username: "admin", organization: "default" };
  })();
}
