/**
 * @module cli/command
 * What a command is, the options every command shares (the client-side globals: server, token,
 * CA, --json), and how failures become exit codes: 0 ok, 1 the operation failed, 2 usage or
 * configuration error. The server-side commands' own options are in ./server/options.ts.
 */
import { readFileSync } from "node:fs";
import type { ParseArgsConfig } from "node:util";
import { resolveClientOptions, type ClientOptions } from "../config/client.ts";
import { ConfigError, SlipwayError, UsageError } from "../errors.ts";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  isTTY: boolean;
}

export interface CommandContext {
  values: Values;
  positionals: string[];
  env: Record<string, string | undefined>;
  io: Io;
  client: ClientOptions;
}

export interface Command {
  name: string;
  summary: string;
  /** Lines after "usage:"; options are listed from `options` and `optionHelp`. */
  usage: string;
  options: OptionSpec;
  optionHelp: Record<string, string>;
  /** Accepts positional arguments (subcommands, ids); without this any positional is a usage error. */
  positionals?: boolean;
  run(ctx: CommandContext): Promise<number>;
}

/** Shared by every command: the client-side globals. */
export const GLOBAL_OPTIONS: OptionSpec = {
  server: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  cacert: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};
export const GLOBAL_HELP: Record<string, string> = {
  server: "URL of the Slipway server (env SLIPWAY_SERVER)",
  token: "API token (visible to other users in ps: prefer --token-file or SLIPWAY_TOKEN)",
  "token-file": "file holding the API token; - reads it from stdin (env SLIPWAY_TOKEN also works)",
  cacert: "CA certificate file to trust for the server (env SLIPWAY_CACERT)",
  json: "machine-readable output",
  help: "show this help",
};

/** The client options; `io` (when given) hears a warning about a token given in argv. */
export function clientOptions(
  values: Values,
  env: Record<string, string | undefined>,
  io?: Pick<Io, "err">,
): ClientOptions {
  return resolveClientOptions(
    {
      server: values.server as string | undefined,
      token: tokenOption(values, io),
      cacert: values.cacert as string | undefined,
      json: values.json as boolean | undefined,
    },
    env,
  );
}

/** `--token T` (warned about: any user on the host sees argv) or `--token-file F` (`-`: stdin). */
function tokenOption(values: Values, io?: Pick<Io, "err">): string | undefined {
  const file = values["token-file"];
  if (typeof values.token === "string") {
    if (typeof file === "string") throw new UsageError("give the token once: --token or --token-file, not both");
    io?.err(
      "slipway: warning: --token puts the token where other users of this host can read it (ps, /proc); use --token-file FILE, --token-file - (stdin) or SLIPWAY_TOKEN",
    );
    return values.token;
  }
  if (typeof file !== "string") return undefined;
  if (file === "") throw new UsageError("--token-file needs a path, or - for stdin");
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw new UsageError(
      `--token-file ${file === "-" ? "- (stdin)" : JSON.stringify(file)}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  const token = text.split("\n")[0]!.trim();
  if (!token) throw new UsageError(`--token-file ${file === "-" ? "- (stdin)" : JSON.stringify(file)} holds no token`);
  return token;
}

/** Maps a thrown error to an exit code and prints one clear line (SLIPWAY_DEBUG=1 adds the stack). */
export function reportFailure(e: unknown, io: Io, env: Record<string, string | undefined>): number {
  if (e instanceof UsageError || e instanceof ConfigError) {
    io.err(`slipway: ${e.message}`);
    return EXIT_USAGE;
  }
  if (e instanceof SlipwayError) {
    io.err(`slipway: ${e.message}`);
    return EXIT_FAILED;
  }
  io.err(`slipway: internal error: ${oneLine(e)}`);
  if (env.SLIPWAY_DEBUG) io.err(String((e as Error)?.stack));
  return EXIT_FAILED;
}

/** An unexpected error's message on one line, without the code excerpts some runtimes append. */
function oneLine(e: unknown): string {
  const message =
    e instanceof Error
      ? e.message || e.name
      : typeof e === "string"
        ? e
        : (() => {
            try {
              return JSON.stringify(e) ?? String(e);
            } catch {
              return String(e);
            }
          })();
  const first =
    message
      .split("\n")
      .find((l) => l.trim() !== "")
      ?.trim() ?? "unknown error";
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const line = typeof code === "string" && !first.includes(code) ? `${first} (${code})` : first;
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}
