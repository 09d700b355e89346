/**
 * @module main
 * The `slipway` executable: hands argv to the CLI and exits with its code. An error that escapes
 * every handler (thrown in a callback, a promise nobody awaited) is still one line and exit 1:
 * Bun's own report of it would print the bundled source around the throw.
 */
import { main } from "./cli/index.ts";
import { reportFailure, type Io } from "./cli/command.ts";

const io: Io = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  isTTY: Boolean(process.stderr.isTTY),
};
const crash = (e: unknown) => process.exit(reportFailure(e, io, process.env));
process.on("uncaughtException", crash);
process.on("unhandledRejection", crash);

process.exit(await main(process.argv.slice(2), process.env, io));
