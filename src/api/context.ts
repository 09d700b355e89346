/**
 * @module api/context
 * Per-request bookkeeping shared by the hooks: request id, start time. Kept in a WeakMap keyed
 * by the Request so it exists from the first hook (before routing and parsing) to the last.
 * Also the one way a handler lifts the server's idle timeout for a request it holds open.
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

const holders = new WeakMap<Request, () => void>();

/** Set by the HTTP server for each request: how to lift that request's idle timeout. */
export function allowHoldingOpen(request: Request, lift: () => void): void {
  holders.set(request, lift);
}

/**
 * For a request held open on purpose (a long poll, a server or client stream), called once the
 * handler has accepted it: the server's idle timeout (10 s without a byte either way) would
 * otherwise cut it. Every other request keeps that timeout.
 */
export function holdOpen(request: Request): void {
  holders.get(request)?.();
}
