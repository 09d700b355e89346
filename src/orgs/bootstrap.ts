/**
 * @module orgs/bootstrap
 * First start: when no user exists, create the instance administrator, the first organization
 * (the administrator owns it) and a user token for the administrator, written to
 * `<data-dir>/initial-admin-token` with mode 0600. All in one transaction; the file is written
 * inside it, so either both exist or neither does. The rows are made by their owners (this
 * room's service, auth/api-tokens); the use case lives here, beside the users it starts.
 */
import type { Database } from "bun:sqlite";
import { join } from "node:path";
import { tokensServiceFactory } from "../auth/api-tokens.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { writeFileAtomic } from "../fs/atomic.ts";
import { orgsServiceFactory } from "./service.ts";

export const INITIAL_ADMIN_TOKEN_FILE = "initial-admin-token";

export interface BootstrapResult {
  created: boolean;
  tokenFile: string;
  username?: string;
  organization?: string;
}

export function bootstrapAdministrator(db: Database, dataDir: string, now = new Date()): BootstrapResult {
  const tokenFile = join(dataDir, INITIAL_ADMIN_TOKEN_FILE);
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit, now: () => now });
  const tokens = tokensServiceFactory({ db, audit, now: () => now });
  return db.transaction((): BootstrapResult => {
    if (orgs.userCount() > 0) return { created: false, tokenFile };
    const { userId } = orgs.createFirstAdministrator();
    const token = tokens.issueInitialAdminToken(userId);
    writeFileAtomic(tokenFile, `${token}\n`, 0o600);
    return { created: true, tokenFile, username: "admin", organization: "default" };
  })();
}
