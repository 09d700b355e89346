/**
 * @module config/paths
 * Where Slipway looks for its config file and keeps its data when nothing says otherwise.
 * System mode (root, with /etc/slipway present — what the .deb sets up) uses /etc and /var/lib;
 * otherwise the XDG user directories, so an evaluator's `slipway serve` needs no root.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface PathEnv {
  uid: number;
  env: Record<string, string | undefined>;
  /** Tests point this elsewhere; the real one is /etc/slipway. */
  systemConfigDir?: string;
}

export const SYSTEM_CONFIG_DIR = "/etc/slipway";
export const SYSTEM_DATA_DIR = "/var/lib/slipway";

export function isSystemMode(p: PathEnv): boolean {
  return p.uid === 0 && existsSync(p.systemConfigDir ?? SYSTEM_CONFIG_DIR);
}

function home(p: PathEnv): string {
  return p.env.HOME || homedir();
}

export function defaultConfigFile(p: PathEnv): string {
  if (isSystemMode(p)) return join(p.systemConfigDir ?? SYSTEM_CONFIG_DIR, "slipway.toml");
  return join(p.env.XDG_CONFIG_HOME || join(home(p), ".config"), "slipway", "slipway.toml");
}

export function defaultDataDir(p: PathEnv): string {
  if (isSystemMode(p)) return SYSTEM_DATA_DIR;
  return join(p.env.XDG_DATA_HOME || join(home(p), ".local", "share"), "slipway");
}
