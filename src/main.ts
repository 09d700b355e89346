/**
 * @module main
 * The `slipway` executable: hands argv to the CLI and exits with its code.
 */
import { main } from "./cli/index.ts";

const code = await main(process.argv.slice(2), process.env, {
  out: (t) => process.stdout.write(t + "\n"),
  err: (t) => process.stderr.write(t + "\n"),
  isTTY: Boolean(process.stderr.isTTY),
});
process.exit(code);
