/**
 * @module cli/version
 * `slipway version` (also `slipway --version`).
 */
import { VERSION } from "../version.ts";
import { EXIT_OK, printJson, type Command } from "./command.ts";

export const versionCommand: Command = {
  name: "version",
  summary: "print the version",
  usage: "slipway version [--json]",
  options: {},
  optionHelp: {},
  async run(ctx) {
    const info = { version: VERSION, bun: Bun.version, platform: `${process.platform}-${process.arch}` };
    if (ctx.client.json) printJson(ctx.io, info);
    else ctx.io.out(`slipway ${info.version} (bun ${info.bun}, ${info.platform})`);
    return EXIT_OK;
  },
};
