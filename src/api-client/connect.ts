/**
 * @module api-client/connect
 * Connect unary calls with the JSON codec, on the appliance's API client: how Slipway's own CLI
 * calls the build API the depot CLI uses (CreateBuild, GetBuildKitConnection, FinishBuild, ...).
 * An error answer becomes an RpcError carrying Connect's code and message.
 */
import { SlipwayError } from "../errors.ts";
import type { ApiClient } from "./index.ts";

/** Thrown for an RPC error: Connect's code and message. */
export class RpcError extends SlipwayError {
  override name = "RpcError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** One Connect unary call with the JSON codec. */
export async function rpc<T>(api: ApiClient, method: string, body: unknown): Promise<T> {
  const r = await api.raw<Record<string, unknown>>("POST", `/${method}`, body);
  if (r.status === 200) return r.body as T;
  const e = (r.body ?? {}) as { code?: string; message?: string; detail?: string };
  throw new RpcError(e.code ?? `http_${r.status}`, e.message ?? e.detail ?? `HTTP ${r.status}`);
}
