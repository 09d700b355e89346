/**
 * @module cli
 * The `slipway` command-line program: argv → command. Parses strictly (an unknown flag is a
 * usage error, exit 2), gives every command the client-side globals, prints help, and turns
 * failures into one line and an exit code.
 *
 * Commands are grouped by where they run and what they may import:
 * - ./client/: client-side commands (login, logout, orgs, members, projects, tokens, trust,
 *   egress, build, buildkit-env). They talk to the appliance over its HTTP API through
 *   src/api-client, from any machine, and import nothing of the server's services.
 * - ./agent.ts: `slipway agent`, the runner host's egress agent (src/agent); agent-side, the same
 *   rule.
 * - ./server/: server-side commands (serve, migrate, backup, doctor, pki, admin, builder-image,
 *   and the hidden self-tests). They run on the appliance's host with its config and data dir
 *   (--config, --data-dir, --set) and use the server's services directly.
 * What all of them share sits here: ./command.ts, ./subcommands.ts, ./output.ts, ./version.ts,
 * ./help.ts (the help text, also rendered as man pages) and ./completion.ts.
 */
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { EXIT_OK, GLOBAL_OPTIONS, clientOptions, reportFailure, type Command, type Io } from "./command.ts";
import { completionCommand } from "./completion.ts";
import { commandHelp, topHelp } from "./help.ts";
import { versionCommand } from "./version.ts";
// Client-side: talk to the appliance over its HTTP API, from any machine.
import { buildCommand, buildkitEnvCommand } from "./client/build.ts";
import { buildsCommand } from "./client/builds.ts";
import { egressCommand } from "./client/egress.ts";
import { loginCommand } from "./client/login.ts";
import { logoutCommand } from "./client/logout.ts";
import { membersCommand } from "./client/members.ts";
import { orgsCommand } from "./client/orgs.ts";
import { projectsCommand } from "./client/projects.ts";
import { tokensCommand } from "./client/tokens.ts";
import { trustCommand } from "./client/trust.ts";
// Agent-side: the runner host's egress agent.
import { agentCommand } from "./agent.ts";
// Server-side: on the appliance's host, with its config and data dir.
import { adminCommand } from "./server/admin.ts";
import { backupCommand } from "./server/backup.ts";
import { builderImageCommand } from "./server/builder-image.ts";
import { doctorCommand } from "./server/doctor.ts";
import { failSelftestCommand } from "./server/fail-selftest.ts";
import { migrateCommand } from "./server/migrate.ts";
import { pkiCommand } from "./server/pki.ts";
import { restoreCommand } from "./server/restore.ts";
import { serveCommand } from "./server/serve.ts";
import { volumeSelftestCommand } from "./server/volume-selftest.ts";

export const COMMANDS: Command[] = [
  serveCommand,
  migrateCommand,
  backupCommand,
  restoreCommand,
  doctorCommand,
  versionCommand,
  loginCommand,
  logoutCommand,
  orgsCommand,
  membersCommand,
  projectsCommand,
  buildsCommand,
  buildCommand,
  buildkitEnvCommand,
  tokensCommand,
  trustCommand,
  egressCommand,
  agentCommand,
  adminCommand,
  pkiCommand,
  builderImageCommand,
  completionCommand(() => COMMANDS),
];

/** Not listed in help: test hooks that ship in the binary (see each command's module comment). */
const HIDDEN_COMMANDS: Command[] = [volumeSelftestCommand, failSelftestCommand];

export async function main(argv: string[], env: Record<string, string | undefined>, io: Io): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "--help" || first === "-h" || first === "help") {
      const target = first === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
      if (first === "help" && rest[0] && !target)
        throw new UsageError(`unknown command '${rest[0]}'; run 'slipway --help'`);
      io.out(target ? commandHelp(target) : topHelp(COMMANDS));
      return first === undefined ? 2 : EXIT_OK;
    }
    if (first === "--version" || first === "-V")
      return versionCommand.run({
        values: {},
        positionals: [],
        env,
        io,
        client: clientOptions({ json: rest.includes("--json") }, env),
      });
    const command = COMMANDS.find((c) => c.name === first) ?? HIDDEN_COMMANDS.find((c) => c.name === first);
    if (!command) throw new UsageError(`unknown command '${first}'; run 'slipway --help'`);

    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...GLOBAL_OPTIONS, ...command.options },
        strict: true,
        allowPositionals: command.positionals === true,
      });
    } catch (e) {
      throw new UsageError(
        `${command.name}: ${(e as Error).message.split("\n")[0]}; run 'slipway ${command.name} --help'`,
      );
    }
    if (parsed.values.help) {
      io.out(commandHelp(command));
      return EXIT_OK;
    }
    const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
    return await command.run({
      values,
      positionals: parsed.positionals,
      env,
      io,
      client: clientOptions(values, env, io),
    });
  } catch (e) {
    return reportFailure(e, io, env);
  }
}
