/**
 * @module wire/buildkit
 * The slice of BuildKit's gRPC API (package moby.buildkit.v1) Slipway speaks itself: ListWorkers,
 * which tells whether a builder is ready and what platforms it builds, and the status messages
 * clients report during a build — generated from proto/moby by protoc-gen-es (./gen).
 */
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ListWorkersRequestSchema, ListWorkersResponseSchema } from "./gen/moby/buildkit/v1/control_pb.ts";

export {
  StatusResponseSchema,
  type StatusResponse,
  type Vertex,
  type VertexLog,
} from "./gen/moby/buildkit/v1/control_pb.ts";

export interface WorkerInfo {
  id: string;
  /** `os/arch[/variant]`, e.g. `linux/amd64`. */
  platforms: string[];
  labels: Record<string, string>;
}

/** ListWorkersResponse bytes → workers (throws for what is not one). */
export function decodeListWorkers(message: Uint8Array): WorkerInfo[] {
  return fromBinary(ListWorkersResponseSchema, message).record.map((r) => ({
    id: r.id,
    platforms: r.platforms.map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join("/")),
    labels: { ...r.labels },
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
    const req = session.request({
      ":method": "POST",
      ":path": "/moby.buildkit.v1.Control/ListWorkers",
      "content-type": "application/grpc",
      te: "trailers",
    });
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
      if (status !== "0")
        return done(
          new Error(`ListWorkers failed: grpc-status ${status ?? "missing"} ${decodeURIComponent(grpcMessage)}`.trim()),
        );
      const body = Buffer.concat(chunks);
      if (body.length < 5) return done(null, []);
      try {
        done(null, decodeListWorkers(new Uint8Array(body.subarray(5, 5 + body.readUInt32BE(1)))));
      } catch (e) {
        done(e as Error);
      }
    });
    const payload = toBinary(ListWorkersRequestSchema, create(ListWorkersRequestSchema));
    const frame = Buffer.alloc(5 + payload.length);
    frame.writeUInt32BE(payload.length, 1);
    frame.set(payload, 5);
    req.end(frame);
  });
}
