/**
 * @module config/client
 * Options of the client-side commands (login, build, ...): which server, which token, which CA,
 * and whether to print JSON. Flags win over SLIPWAY_SERVER / SLIPWAY_TOKEN / SLIPWAY_CACERT.
 */
import { ConfigError } from "../errors.ts";

export interface ClientOptions {
  server?: string;
  token?: string;
  cacert?: string;
  json: boolean;
}

export interface ClientFlags {
  server?: string;
  token?: string;
  cacert?: string;
  json?: boolean;
}

export function resolveClientOptions(flags: ClientFlags, env: Record<string, string | undefined>): ClientOptions {
  const server = flags.server ?? env.SLIPWAY_SERVER;
  if (server !== undefined) {
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(server).protocol);
    } catch {}
    if (!ok)
      throw new ConfigError(
        `--server/SLIPWAY_SERVER = ${JSON.stringify(server)} is invalid: expected an http:// or https:// URL`,
      );
  }
  return {
    server,
    token: flags.token ?? env.SLIPWAY_TOKEN,
    cacert: flags.cacert ?? env.SLIPWAY_CACERT,
    json: flags.json ?? false,
  };
}
