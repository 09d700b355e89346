/**
 * @module test/support/unit-env
 * The environment the packaged slipway.service gives `serve` (its `Environment=` lines), so the
 * benches run the appliance as it is installed, and their stand-ins with the same runtime setting.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const UNIT = join(import.meta.dir, "..", "..", "packaging", "systemd", "slipway.service");

/** `Environment=NAME=value` lines of slipway.service (one assignment per line, unquoted). */
export function unitEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(UNIT, "utf8").split("\n")) {
    const m = /^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}
