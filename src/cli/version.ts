/**
 * @module cli/version
 * `slipway version` (also `slipway --version`). With --json it also lists what the binary
 * carries, the same components as the .deb's CycloneDX SBOM (see ./sbom.ts), embedded at build
 * time so the list needs nothing on disk.
 */
import { VERSION } from "../version.ts";
import { EXIT_OK, printJson, type Command } from "./command.ts";
import { embeddedComponents } from "./sbom.macro.ts" with { type: "macro" };

/** The npm packages and the runtime inside this binary, read when it was bundled. */
export const COMPONENTS = embeddedComponents();

export const versionCommand: Command = {
  name: "version",
  summary: "print the version (--json: with the npm packages and runtime inside the binary)",
  usage: "slipway version [--json]",
  options: {},
  optionHelp: {},
  async run(ctx) {
    const info = { version: VERSION, bun: Bun.version, platform: `${process.platform}-${process.arch}` };
    if (ctx.client.json) printJson(ctx.io, { ...info, components: COMPONENTS });
    else ctx.io.out(`slipway ${info.version} (bun ${info.bun}, ${info.platform})`);
    return EXIT_OK;
  },
};
