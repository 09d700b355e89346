/**
 * @module builders/image/grpc
 * Asks a builder's BuildKit `moby.buildkit.v1.Control/ListWorkers` over its unix socket — for the
 * `dockerd` runtime after the `POST /grpc` h2c upgrade — with node:http2 on the opened socket and
 * a minimal protobuf reader. It answers "is this builder's BuildKit up, and what can it build".
 */
import http2 from "node:http2";
import type net from "node:net";
import { openBuilderSocket, type BuilderRuntime } from "../../router/builder-socket.ts";

export interface WorkerInfo {
  id: string;
  /** `os/arch[/variant]`, e.g. `linux/amd64`. */
  platforms: string[];
  labels: Record<string, string>;
}

export interface ProtoField {
  field: number;
  wire: number;
  /** The bytes of a length-delimited field (wire type 2); empty for the others. */
  bytes: Uint8Array;
  /** The value of a varint field (wire type 0). */
  value: number;
}

/** A minimal protobuf reader: every top-level field of a message. */
export function protoFields(buf: Uint8Array): ProtoField[] {
  const out: ProtoField[] = [];
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error("truncated protobuf varint");
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) out.push({ field, wire, bytes: new Uint8Array(), value: varint() });
    else if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error("truncated protobuf field");
      out.push({ field, wire, bytes: buf.subarray(i, i + len), value: 0 });
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
  return out;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** ListWorkersResponse { repeated WorkerRecord record = 1 } → workers. */
export function decodeListWorkers(message: Uint8Array): WorkerInfo[] {
  return protoFields(message)
    .filter((f) => f.field === 1 && f.wire === 2)
    .map((rec) => {
      const w: WorkerInfo = { id: "", platforms: [], labels: {} };
      for (const f of protoFields(rec.bytes)) {
        if (f.wire !== 2) continue;
        if (f.field === 1) w.id = text(f.bytes);
        else if (f.field === 2) {
          // map<string,string> entry: key = 1, value = 2
          const kv = protoFields(f.bytes);
          const k = kv.find((x) => x.field === 1);
          const v = kv.find((x) => x.field === 2);
          if (k) w.labels[text(k.bytes)] = v ? text(v.bytes) : "";
        } else if (f.field === 3) {
          // pb.Platform: Architecture = 1, OS = 2, Variant = 3
          const p = protoFields(f.bytes);
          const get = (n: number) => text(p.find((x) => x.field === n)?.bytes ?? new Uint8Array());
          w.platforms.push([get(2), get(1), get(3)].filter(Boolean).join("/"));
        }
      }
      return w;
    });
}

/** Calls ListWorkers on an HTTP/2 session; resolves with grpc-status and the response message. */
export function callListWorkers(session: http2.ClientHttp2Session, timeoutMs = 5000): Promise<{ status: string | undefined; message: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": "/moby.buildkit.v1.Control/ListWorkers", "content-type": "application/grpc", te: "trailers" });
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
export async function listWorkersAt(socketPath: string, runtime: BuilderRuntime, timeoutMs = 5000): Promise<WorkerInfo[]> {
  const { socket, head } = await openBuilderSocket(socketPath, runtime, timeoutMs);
  if (head.length > 0) socket.unshift(head);
  socket.resume();
  const session = http2.connect("http://builder", { createConnection: () => socket as net.Socket });
  session.on("error", () => {});
  try {
    const { status, message } = await callListWorkers(session, timeoutMs);
    if (status !== "0") throw new Error(`ListWorkers answered grpc-status ${status ?? "(none)"}`);
    return decodeListWorkers(message);
  } finally {
    session.destroy();
    socket.destroy();
  }
}
