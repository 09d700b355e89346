/**
 * @module api/context
 * Per-request bookkeeping shared by the hooks: request id, start time. Kept in a WeakMap keyed
 * by the Request so it exists from the first hook (before routing and parsing) to the last.
 */

export interface RequestInfo {
  id: string;
  startedAt: number;
  /** A Connect RPC call (the depot-compatible build API): it reads its own body. */
  rpc: boolean;
}

const infos = new WeakMap<Request, RequestInfo>();
const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Reuses a well-formed incoming X-Request-Id (from a proxy), otherwise makes one. */
export function beginRequest(request: Request): RequestInfo {
  const incoming = request.headers.get("x-request-id");
  const info = {
    id: incoming && VALID_ID.test(incoming) ? incoming : crypto.randomUUID(),
    startedAt: performance.now(),
    rpc: new URL(request.url).pathname.startsWith("/depot."),
  };
  infos.set(request, info);
  return info;
}

export function requestInfo(request: Request): RequestInfo {
  return infos.get(request) ?? beginRequest(request);
}
