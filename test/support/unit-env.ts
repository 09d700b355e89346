/**
 * @module test/support/unit-env
 * The environment the packaged slipway.service gives `serve` (its `Environment=` lines), so the
 * benches run the appliance as it is installed, and their stand-ins with the same runtime setting.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const UNIT = join(import.meta.dir, "..", "..", "packaging", "systemd", "slipway.service");

/** `Environment=NAME=value` lines of slipway.service (one assignment per line, unquoted); `unit` names
 * another checkout's copy (none there: no settings, as that checkout was installed). */
export function unitEnvironment(unit = UNIT): Record<string, string> {
  const env: Record<string, string> = {};
  if (unit !== UNIT && !existsSync(unit)) return env;
  for (const line of readFileSync(unit, "utf8").split("\n")) {
    const m = /^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}
