/**
 * @module cli
 * argv → command. Parses strictly (an unknown flag is a usage error, exit 2), gives every
 * command the client-side globals, and turns failures into one line and an exit code.
 */
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { backupCommand } from "./backup.ts";
import { builderImageCommand } from "./builder-image.ts";
import { buildCommand, buildkitEnvCommand } from "./build.ts";
import { EXIT_OK, GLOBAL_HELP, GLOBAL_OPTIONS, clientOptions, reportFailure, type Command, type Io } from "./command.ts";
import { doctorCommand } from "./doctor.ts";
import { adminCommand } from "./admin.ts";
import { loginCommand } from "./login.ts";
import { logoutCommand } from "./logout.ts";
import { membersCommand } from "./members.ts";
import { orgsCommand } from "./orgs.ts";
import { projectsCommand } from "./projects.ts";
import { tokensCommand } from "./tokens.ts";
import { trustCommand } from "./trust.ts";
import { egressCommand } from "./egress.ts";
import { agentCommand } from "./agent.ts";
import { migrateCommand } from "./migrate.ts";
import { pkiCommand } from "./pki.ts";
import { serveCommand } from "./serve.ts";
import { versionCommand } from "./version.ts";
import { volumeSelftestCommand } from "./volume-selftest.ts";
import { failSelftestCommand } from "./fail-selftest.ts";

export const COMMANDS: Command[] = [
  serveCommand,
  migrateCommand,
  backupCommand,
  doctorCommand,
  versionCommand,
  loginCommand,
  logoutCommand,
  orgsCommand,
  membersCommand,
  projectsCommand,
  buildCommand,
  buildkitEnvCommand,
  tokensCommand,
  trustCommand,
  egressCommand,
  agentCommand,
  adminCommand,
  pkiCommand,
  builderImageCommand,
];

/** Not listed in help: test hooks that ship in the binary (see each command's module comment). */
const HIDDEN_COMMANDS: Command[] = [volumeSelftestCommand, failSelftestCommand];

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `slipway ${VERSION}: a self-hosted build appliance`,
    "",
    "usage: slipway <command> [options]",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "global options:",
    ...Object.entries(GLOBAL_HELP).map(([k, v]) => `  --${k.padEnd(10)} ${v}`),
    "",
    "Run 'slipway <command> --help' for a command's options.",
    "Exit codes: 0 ok, 1 operation failed, 2 usage or configuration error.",
  ].join("\n");
}

function commandHelp(c: Command): string {
  const all = { ...c.optionHelp, ...GLOBAL_HELP };
  const width = Math.max(...Object.keys(all).map((k) => k.length)) + 2;
  return [`slipway ${c.name}: ${c.summary}`, "", `usage: ${c.usage}`, "", "options:", ...Object.entries(all).map(([k, v]) => `  --${k.padEnd(width)} ${v}`)].join("\n");
}

export async function main(argv: string[], env: Record<string, string | undefined>, io: Io): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "--help" || first === "-h" || first === "help") {
      const target = first === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
      if (first === "help" && rest[0] && !target) throw new UsageError(`unknown command '${rest[0]}'; run 'slipway --help'`);
      io.out(target ? commandHelp(target) : topHelp());
      return first === undefined ? 2 : EXIT_OK;
    }
    if (first === "--version" || first === "-V") return versionCommand.run({ values: {}, positionals: [], env, io, client: clientOptions({ json: rest.includes("--json") }, env) });
    const command = COMMANDS.find((c) => c.name === first) ?? HIDDEN_COMMANDS.find((c) => c.name === first);
    if (!command) throw new UsageError(`unknown command '${first}'; run 'slipway --help'`);

    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...command.options }, strict: true, allowPositionals: command.positionals === true });
    } catch (e) {
      throw new UsageError(`${command.name}: ${(e as Error).message.split("\n")[0]}; run 'slipway ${command.name} --help'`);
    }
    if (parsed.values.help) {
      io.out(commandHelp(command));
      return EXIT_OK;
    }
    const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
    return await command.run({ values, positionals: parsed.positionals, env, io, client: clientOptions(values, env, io) });
  } catch (e) {
    return reportFailure(e, io, env);
  }
}
