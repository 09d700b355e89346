/**
 * @module cli/server/admin
 * `slipway admin create-user|reset-token`: offline recovery and set-up on the server's host,
 * working directly on the data dir's database (safe while `serve` runs: SQLite WAL). For when
 * the administrator has lost their token, or to create users before anyone can log in.
 */
import type { Database } from "bun:sqlite";
import { auditServiceFactory } from "../../auth/audit.ts";
import { sessionsServiceFactory } from "../../auth/sessions.ts";
import { tokensServiceFactory } from "../../auth/api-tokens.ts";
import { dispatch, required } from "../subcommands.ts";
import { UsageError } from "../../errors.ts";
import { USERNAME_PATTERN, orgsServiceFactory } from "../../orgs/service.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import { SERVER_FLAGS, SERVER_HELP, SERVER_OPTIONS } from "./options.ts";
import { openDataDir } from "./offline.ts";

/** How the audit log names these commands. */
const ACTOR = "cli:admin";
/** The API's rule for usernames (POST /api/v1/users). */
const USERNAME = new RegExp(USERNAME_PATTERN);

function openDb(ctx: CommandContext): Database {
  return openDataDir(ctx).db;
}

function username(ctx: CommandContext, sub: string): string {
  const u = required(ctx, "username", `admin ${sub}`);
  if (!USERNAME.test(u))
    throw new UsageError(
      `--username ${JSON.stringify(u)}: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters`,
    );
  return u;
}

/** The whole of stdin, minus one trailing newline. */
async function passwordFromStdin(): Promise<string> {
  const text = (await Bun.stdin.text()).replace(/\r?\n$/, "");
  if (text === "") throw new UsageError("--password-stdin: nothing was read from stdin");
  return text;
}

export const adminCommand: Command = {
  name: "admin",
  summary: "offline administration on the server's host: create a user, or a fresh token for one (recovery)",
  usage: [
    "slipway admin create-user --username U [--admin] [--password-stdin] [--data-dir DIR]",
    "       slipway admin reset-token --username U [--data-dir DIR]",
  ].join("\n"),
  options: {
    ...SERVER_OPTIONS,
    username: { type: "string" },
    admin: { type: "boolean" },
    "password-stdin": { type: "boolean" },
  },
  optionHelp: {
    ...SERVER_HELP,
    username: "the user",
    admin: "create-user: make them an administrator of the whole appliance",
    "password-stdin": "create-user: read a password for the web UI from stdin (at least 12 characters)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "admin",
      {
        "create-user": {
          options: [...SERVER_FLAGS, "username", "admin", "password-stdin"],
          async run() {
            const name = username(ctx, "create-user");
            const password = ctx.values["password-stdin"] ? await passwordFromStdin() : undefined;
            const db = openDb(ctx);
            try {
              const audit = auditServiceFactory({ db });
              const orgs = orgsServiceFactory({ db, audit });
              const sessions = sessionsServiceFactory({ db, audit, users: orgs });
              if (password !== undefined) sessions.checkPassword(password); // before the user exists
              const user = orgs.createUser({ username: name, isAdmin: ctx.values.admin === true }, ACTOR);
              if (password !== undefined) await sessions.setPassword(user.id, password);
              if (ctx.client.json) printJson(ctx.io, { ...user, password_set: password !== undefined });
              else {
                ctx.io.out(
                  `created user ${user.username} (${user.id})${user.is_admin ? ", an administrator" : ""}${password !== undefined ? ", with a password for the web UI" : ""}`,
                );
                ctx.io.out(
                  `give them a token with 'slipway admin reset-token --username ${user.username}', and add them to organizations with 'slipway members add'`,
                );
              }
              return EXIT_OK;
            } finally {
              db.close();
            }
          },
        },
        "reset-token": {
          options: [...SERVER_FLAGS, "username"],
          async run() {
            const name = username(ctx, "reset-token");
            const db = openDb(ctx);
            try {
              const audit = auditServiceFactory({ db });
              const user = orgsServiceFactory({ db, audit }).getUser(name);
              const created = tokensServiceFactory({ db, audit }).create(
                { kind: "user", name: "reset-token", expiresAt: null, userId: user.id, createdBy: null },
                ACTOR,
              );
              if (ctx.client.json) printJson(ctx.io, { id: created.metadata.id, token: created.token });
              else {
                ctx.io.out(created.token);
                ctx.io.err(
                  `created user token ${created.metadata.id} for ${user.username}; this is the only time it is shown: store it now`,
                );
                ctx.io.err(
                  "(revoke tokens you no longer have with 'slipway tokens list' and 'slipway tokens revoke ID')",
                );
              }
              return EXIT_OK;
            } finally {
              db.close();
            }
          },
        },
      },
      ctx,
    ),
};
