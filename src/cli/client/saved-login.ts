/**
 * @module cli/client/saved-login
 * The client's saved login: `$XDG_CONFIG_HOME/slipway/client.json` (default
 * `~/.config/slipway/client.json`), holding the server URL, the token, the CA to trust (its PEM,
 * not a path, so the login survives the file moving) and, for tokens made by device login, the
 * token's id so `logout` can revoke it. Written atomically, mode 0600, in a 0700 directory.
 *
 * Every client command resolves its connection field by field: flags > environment
 * (SLIPWAY_SERVER / SLIPWAY_TOKEN / SLIPWAY_CACERT) > this file. The saved token and CA are only
 * used for the saved server: `--server` naming another server never receives the saved token.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import type { ClientOptions } from "../../config/client.ts";
import { ConfigError, UsageError } from "../../errors.ts";
import { writeFileAtomic } from "../../fs/atomic.ts";

export const CLIENT_CONFIG_FILE = "client.json";

export interface SavedClientConfig {
  server: string;
  token?: string;
  /** Set when the token came from device login: `logout` revokes it on the server. */
  token_id?: string;
  /** The CA certificate(s) to trust for the server, as PEM. */
  cacert_pem?: string;
  /** Who the token acts as, when known (shown by `login`, informational only). */
  username?: string;
}

type Env = Record<string, string | undefined>;

export function clientConfigPath(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), ".config");
  return join(base, "slipway", CLIENT_CONFIG_FILE);
}

/** The saved config, or null when there is none. A damaged file is a configuration error. */
export function readClientConfig(env: Env): SavedClientConfig | null {
  const path = clientConfigPath(env);
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(
      `${path} is not valid JSON (${(e as Error).message}); fix it, or delete it and run 'slipway login' again`,
    );
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    throw new ConfigError(`${path} must hold a JSON object; delete it and run 'slipway login' again`);
  const o = parsed as Record<string, unknown>;
  const str = (k: string) => {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string")
      throw new ConfigError(
        `${path}: "${k}" must be a string; fix it, or delete the file and run 'slipway login' again`,
      );
    return v;
  };
  const server = str("server");
  if (!server) throw new ConfigError(`${path} names no server; delete it and run 'slipway login --server URL'`);
  const out: SavedClientConfig = { server };
  for (const k of ["token", "token_id", "cacert_pem", "username"] as const) {
    const v = str(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** Saves atomically with mode 0600; the directory is created (or tightened) to 0700. */
export function writeClientConfig(env: Env, config: SavedClientConfig): string {
  const path = clientConfigPath(env);
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) if (typeof v === "string" && v !== "") clean[k] = v;
  writeFileAtomic(path, `${JSON.stringify(clean, null, 2)}\n`, 0o600);
  return path;
}

/** Same scheme, host and port (and path, ignoring a trailing slash). */
export function sameServer(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    return x.origin === y.origin && x.pathname.replace(/\/+$/, "") === y.pathname.replace(/\/+$/, "");
  } catch {
    return false;
  }
}

export function readCaFile(path: string, source = "--cacert"): string {
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(
      `${source} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----"))
    throw new ConfigError(`${source} ${path}: not a PEM certificate (no BEGIN CERTIFICATE line)`);
  return pem;
}

export interface Connection {
  server: string;
  token: string | undefined;
  caPem: string | undefined;
}

export const NOT_LOGGED_IN = "not logged in: run 'slipway login --server URL' (or pass --server and --token)";

/** Server, token and CA for a client command: flags > env > saved config. */
export function resolveConnection(client: ClientOptions, env: Env, opts: { requireToken?: boolean } = {}): Connection {
  const saved = readClientConfig(env);
  const server = client.server ?? saved?.server;
  if (!server) throw new UsageError(NOT_LOGGED_IN);
  const usesSaved = saved !== null && sameServer(server, saved.server);
  const token = client.token ?? (usesSaved ? saved.token : undefined);
  const caPem =
    client.cacert !== undefined
      ? readCaFile(client.cacert, env.SLIPWAY_CACERT === client.cacert ? "SLIPWAY_CACERT" : "--cacert")
      : usesSaved
        ? saved.cacert_pem
        : undefined;
  if ((opts.requireToken ?? true) && !token) throw new UsageError(NOT_LOGGED_IN);
  return { server, token, caPem };
}
