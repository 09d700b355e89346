/**
 * @module cli/server/options
 * The options of the server-side commands (--config, --data-dir, --set): they work on the
 * appliance's configuration and data dir on this host, so they load the server config.
 */
import { loadConfig, type LoadedConfig, type Override } from "../../config/index.ts";
import { UsageError } from "../../errors.ts";
import type { CommandContext, OptionSpec } from "../command.ts";

/** Options of the commands that work on the server's configuration and data dir. */
export const SERVER_OPTIONS: OptionSpec = {
  config: { type: "string" },
  "data-dir": { type: "string" },
  set: { type: "string", multiple: true },
};
/** Their names, for subcommands that list the options they accept. */
export const SERVER_FLAGS = Object.keys(SERVER_OPTIONS);
export const SERVER_HELP: Record<string, string> = {
  config:
    "config file (default /etc/slipway/slipway.toml as root, else $XDG_CONFIG_HOME/slipway/slipway.toml; env SLIPWAY_CONFIG)",
  "data-dir": "data directory (overrides data.dir)",
  set: "override any setting: --set section.key=value (repeatable)",
};

/** Loads the server config from the shared server options plus command-specific overrides. */
export function loadServerConfig(ctx: CommandContext, extra: Override[] = []): LoadedConfig {
  const overrides: Override[] = [];
  for (const item of (ctx.values.set as string[] | undefined) ?? []) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set ${JSON.stringify(item)}: expected section.key=value`);
    overrides.push({ key: item.slice(0, eq), value: item.slice(eq + 1), source: `--set ${item.slice(0, eq)}` });
  }
  overrides.push(...extra);
  // --data-dir always wins, whatever the file or environment says.
  if (typeof ctx.values["data-dir"] === "string")
    overrides.push({ key: "data.dir", value: ctx.values["data-dir"], source: "--data-dir" });
  return loadConfig({
    uid: process.getuid?.() ?? 1000,
    env: ctx.env,
    configFile: ctx.values.config as string | undefined,
    overrides,
  });
}
