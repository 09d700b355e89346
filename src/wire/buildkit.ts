/**
 * @module wire/buildkit
 * The slice of BuildKit's gRPC API (package moby.buildkit.v1) Slipway speaks itself: ListWorkers,
 * which tells whether a builder is ready and what platforms it builds, and the status messages
 * clients report during a build.
 */
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import { decode, encode, map, message, Timestamp, type Msg } from "./proto.ts";

export const Platform = message("pb.Platform", () => [
  { no: 1, name: "architecture", type: "string" },
  { no: 2, name: "os", type: "string" },
  { no: 3, name: "variant", type: "string" },
]);
export const WorkerRecord = message("moby.buildkit.v1.types.WorkerRecord", () => [
  { no: 1, name: "id", type: "string" },
  { no: 2, name: "labels", type: map() },
  { no: 3, name: "platforms", type: Platform, repeated: true },
]);
export const ListWorkersRequest = message("moby.buildkit.v1.ListWorkersRequest", () => [{ no: 1, name: "filter", type: "string", repeated: true }]);
export const ListWorkersResponse = message("moby.buildkit.v1.ListWorkersResponse", () => [{ no: 1, name: "record", type: WorkerRecord, repeated: true }]);

export const Vertex = message("moby.buildkit.v1.Vertex", () => [
  { no: 1, name: "digest", type: "string" },
  { no: 2, name: "inputs", type: "string", repeated: true },
  { no: 3, name: "name", type: "string" },
  { no: 4, name: "cached", type: "bool" },
  { no: 5, name: "started", type: Timestamp },
  { no: 6, name: "completed", type: Timestamp },
  { no: 7, name: "error", type: "string" },
]);
export const VertexStatus = message("moby.buildkit.v1.VertexStatus", () => [
  { no: 1, name: "id", type: "string" },
  { no: 2, name: "vertex", type: "string" },
  { no: 3, name: "name", type: "string" },
  { no: 4, name: "current", type: "int64" },
  { no: 5, name: "total", type: "int64" },
  { no: 6, name: "timestamp", type: Timestamp },
  { no: 7, name: "started", type: Timestamp },
  { no: 8, name: "completed", type: Timestamp },
]);
export const VertexLog = message("moby.buildkit.v1.VertexLog", () => [
  { no: 1, name: "vertex", type: "string" },
  { no: 2, name: "timestamp", type: Timestamp },
  { no: 3, name: "stream", type: "int64" },
  { no: 4, name: "msg", type: "bytes" },
]);
export const VertexWarning = message("moby.buildkit.v1.VertexWarning", () => [
  { no: 1, name: "vertex", type: "string" },
  { no: 2, name: "level", type: "int64" },
  { no: 3, name: "short", type: "bytes" },
  { no: 4, name: "detail", type: "bytes", repeated: true },
  { no: 5, name: "url", type: "string" },
]);
export const StatusResponse = message("moby.buildkit.v1.StatusResponse", () => [
  { no: 1, name: "vertexes", type: Vertex, repeated: true },
  { no: 2, name: "statuses", type: VertexStatus, repeated: true },
  { no: 3, name: "logs", type: VertexLog, repeated: true },
  { no: 4, name: "warnings", type: VertexWarning, repeated: true },
]);

export interface WorkerInfo {
  id: string;
  /** `os/arch[/variant]`, e.g. `linux/amd64`. */
  platforms: string[];
  labels: Record<string, string>;
}

/** ListWorkersResponse bytes → workers (a ProtoError for what is not one). */
export function decodeListWorkers(message: Uint8Array): WorkerInfo[] {
  return (decode(ListWorkersResponse, message).record as Msg[]).map((r) => ({
    id: r.id as string,
    platforms: (r.platforms as Msg[]).map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join("/")),
    labels: r.labels as Record<string, string>,
  }));
}

/**
 * Calls Control/ListWorkers over an already-open byte stream to BuildKit (a builder socket after
 * any upgrade). Resolves with the workers, rejects on a gRPC error or timeout. Closes the session.
 */
export function listWorkers(stream: Duplex, timeoutMs: number): Promise<WorkerInfo[]> {
  return new Promise((resolve, reject) => {
    const session = http2.connect("http://buildkit", { createConnection: () => stream });
    const done = (err: Error | null, workers?: WorkerInfo[]) => {
      clearTimeout(timer);
      session.close();
      session.destroy();
      if (err) reject(err);
      else resolve(workers!);
    };
    const timer = setTimeout(() => done(new Error(`ListWorkers: no answer within ${timeoutMs} ms`)), timeoutMs);
    session.on("error", (e) => done(e));
    const req = session.request({ ":method": "POST", ":path": "/moby.buildkit.v1.Control/ListWorkers", "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let grpcMessage = "";
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("trailers", (t) => {
      status = String(t["grpc-status"]);
      grpcMessage = String(t["grpc-message"] ?? "");
    });
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("error", (e) => done(e));
    req.on("end", () => {
      if (status !== "0") return done(new Error(`ListWorkers failed: grpc-status ${status ?? "missing"} ${decodeURIComponent(grpcMessage)}`.trim()));
      const body = Buffer.concat(chunks);
      if (body.length < 5) return done(null, []);
      try {
        done(null, decodeListWorkers(new Uint8Array(body.subarray(5, 5 + body.readUInt32BE(1)))));
      } catch (e) {
        done(e as Error);
      }
    });
    const payload = encode(ListWorkersRequest, {});
    const frame = Buffer.alloc(5 + payload.length);
    frame.writeUInt32BE(payload.length, 1);
    frame.set(payload, 5);
    req.end(frame);
  });
}
