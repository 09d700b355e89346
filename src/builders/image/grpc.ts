/**
 * @module builders/image/grpc
 * Asks a builder's BuildKit `moby.buildkit.v1.Control/ListWorkers` over its unix socket — for the
 * `dockerd` runtime after the `POST /grpc` h2c upgrade (the messages are wire/buildkit's). It
 * answers "is this builder's BuildKit up, and what can it build".
 */
import http2 from "node:http2";
import { openBuilderSocket, type BuilderRuntime } from "../../router/builder-socket.ts";
import { listWorkers, type WorkerInfo } from "../../wire/buildkit.ts";

export { decodeListWorkers, type WorkerInfo } from "../../wire/buildkit.ts";

/** Calls ListWorkers on an HTTP/2 session; resolves with grpc-status and the response message. */
export function callListWorkers(
  session: http2.ClientHttp2Session,
  timeoutMs = 5000,
): Promise<{ status: string | undefined; message: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": "/moby.buildkit.v1.Control/ListWorkers",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`ListWorkers did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const chunks: Buffer[] = [];
    let status: string | undefined;
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("trailers", (t) => (status = String(t["grpc-status"])));
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on("end", () => {
      clearTimeout(timer);
      const body = Buffer.concat(chunks);
      if (body.length < 5) return resolve({ status, message: new Uint8Array() });
      const len = body.readUInt32BE(1);
      resolve({ status, message: new Uint8Array(body.subarray(5, 5 + len)) });
    });
    // gRPC framing: 1 byte compressed flag, 4 bytes length, then an empty ListWorkersRequest.
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/**
 * Opens `socketPath` (upgrading to h2c first for dockerd) and lists BuildKit's workers. Rejects
 * when the socket does not answer, the upgrade is refused, or grpc-status is not 0.
 */
export async function listWorkersAt(
  socketPath: string,
  runtime: BuilderRuntime,
  timeoutMs = 5000,
): Promise<WorkerInfo[]> {
  const { socket, head } = await openBuilderSocket(socketPath, runtime, timeoutMs);
  if (head.length > 0) socket.unshift(head);
  socket.resume();
  try {
    return await listWorkers(socket, timeoutMs);
  } finally {
    socket.destroy();
  }
}
