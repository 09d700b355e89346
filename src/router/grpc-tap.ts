/**
 * @module router/grpc-tap
 * Watches the gRPC traffic the build endpoint pipes, without changing a byte of it, and hands
 * out the response messages of chosen methods (BuildKit's Control/Status: the build's steps and
 * logs, which the depot CLI never reports itself).
 *
 * Client → builder: HTTP/2 request headers are HPACK-compressed with per-connection state, so a
 * passive node:http2 server session decodes them — fed only the frames it needs (everything but
 * DATA payloads: an empty DATA frame stands in for one that ends a stream), its own output
 * discarded. It names each stream's method. Builder → client: frames are parsed by hand; DATA of
 * watched streams is reassembled into gRPC messages (5-byte prefix); everything else is skipped
 * by counting, never buffered.
 */
import http2 from "node:http2";
import { Duplex } from "node:stream";

export interface GrpcTap {
  fromClient(chunk: Uint8Array): void;
  fromServer(chunk: Uint8Array): void;
  close(): void;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const DATA = 0x0;
const RST_STREAM = 0x3;
const END_STREAM = 0x1;
const PADDED = 0x8;
/** Bytes kept for a stream whose method is not known yet (the headers are still being decoded). */
const UNKNOWN_STREAM_BUDGET = 256 * 1024;
/** Largest gRPC message reassembled; a bigger one is skipped. */
const MAX_MESSAGE = 16 * 1024 * 1024;

/** Frame reader: full frames for what it keeps, byte counting for DATA payloads it skips. */
function frameReader(
  onFrame: (type: number, flags: number, stream: number, payload: Buffer | null, header: Buffer) => void,
  wantPayload: (type: number, stream: number) => boolean,
) {
  let buf: Buffer = Buffer.alloc(0);
  let skip = 0;
  return (chunk: Uint8Array) => {
    let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (skip > 0) {
      const n = Math.min(skip, data.length);
      skip -= n;
      data = data.subarray(n);
    }
    buf = buf.length ? Buffer.concat([buf, data]) : data;
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      const type = buf[3]!;
      const flags = buf[4]!;
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const header = buf.subarray(0, 9);
      if (!wantPayload(type, stream)) {
        onFrame(type, flags, stream, null, Buffer.from(header));
        const have = Math.min(len, buf.length - 9);
        skip = len - have;
        buf = buf.subarray(9 + have);
        continue;
      }
      if (buf.length < 9 + len) break;
      onFrame(type, flags, stream, buf.subarray(9, 9 + len), Buffer.from(header));
      buf = buf.subarray(9 + len);
    }
    if (buf.length) buf = Buffer.from(buf); // detach from the socket's chunk
  };
}

export function grpcResponseTap(
  paths: ReadonlySet<string>,
  onMessage: (path: string, message: Uint8Array) => void,
): GrpcTap {
  /** stream id → method path (null: not watched). */
  const methods = new Map<number, string | null>();
  /** Per watched (or not yet known) stream: reassembly buffer. */
  const pending = new Map<number, Buffer>();
  let closed = false;

  // The passive HPACK decoder: a server session whose input is the client's non-DATA frames.
  const feed = new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      cb(); // what the passive session would answer goes nowhere
    },
  });
  const server = http2.createServer({
    settings: { maxHeaderListSize: 1 << 20, maxConcurrentStreams: 1 << 30 },
    maxSessionMemory: 64,
  });
  server.on("stream", (stream, headers) => {
    const path = String(headers[":path"] ?? "");
    const id = stream.id ?? 0;
    const watched = paths.has(path);
    methods.set(id, watched ? path : null);
    if (!watched) pending.delete(id);
    else drain(id);
    stream.on("error", () => {});
    stream.resume();
  });
  server.on("sessionError", () => {});
  server.on("session", (s) => s.on("error", () => {}));
  server.emit("connection", feed);

  let prefaceLeft = PREFACE.length;
  const clientFrames = frameReader(
    (type, flags, _stream, payload, header) => {
      if (type === DATA) {
        if (flags & END_STREAM) {
          // An empty DATA frame that ends the stream: the decoder sees the stream close.
          const empty = Buffer.from(header);
          empty.writeUIntBE(0, 0, 3);
          empty[4] = END_STREAM;
          feed.push(empty);
        }
        return;
      }
      feed.push(Buffer.concat([header, payload!]));
    },
    (type) => type !== DATA,
  );

  const deliver = (stream: number, path: string) => {
    let b = pending.get(stream);
    while (b && b.length >= 5) {
      const len = b.readUInt32BE(1);
      if (len > MAX_MESSAGE) {
        methods.set(stream, null); // give up on this stream rather than buffer without end
        pending.delete(stream);
        return;
      }
      if (b.length < 5 + len) break;
      const compressed = b[0] === 1;
      const msg = b.subarray(5, 5 + len);
      b = b.subarray(5 + len);
      if (!compressed) {
        try {
          onMessage(path, new Uint8Array(msg));
        } catch {
          // an observer's failure never touches the connection
        }
      }
    }
    if (b?.length) pending.set(stream, Buffer.from(b));
    else pending.delete(stream);
  };
  const drain = (stream: number) => {
    const path = methods.get(stream);
    if (path) deliver(stream, path);
  };

  const serverFrames = frameReader(
    (type, flags, stream, payload) => {
      if (type === RST_STREAM) {
        methods.delete(stream);
        pending.delete(stream);
        return;
      }
      if (type !== DATA || !payload) return;
      let data = payload;
      if (flags & PADDED) data = data.subarray(1, data.length - data[0]!);
      const known = methods.get(stream);
      const prev = pending.get(stream);
      if (known === undefined && (prev?.length ?? 0) + data.length > UNKNOWN_STREAM_BUDGET) return;
      pending.set(stream, prev ? Buffer.concat([prev, data]) : Buffer.from(data));
      if (known) deliver(stream, known);
      if (flags & END_STREAM && known !== undefined) {
        methods.delete(stream);
        pending.delete(stream);
      }
    },
    // Keep DATA only for streams that are watched or not known yet.
    (type, stream) => type !== DATA || methods.get(stream) !== null,
  );

  return {
    fromClient(chunk) {
      if (closed) return;
      let data = chunk;
      if (prefaceLeft > 0) {
        const n = Math.min(prefaceLeft, data.length);
        feed.push(Buffer.from(data.subarray(0, n)));
        prefaceLeft -= n;
        data = data.subarray(n);
        if (data.length === 0) return;
      }
      clientFrames(data);
    },
    fromServer(chunk) {
      if (!closed) serverFrames(chunk);
    },
    close() {
      if (closed) return;
      closed = true;
      feed.push(null);
      feed.destroy();
      server.close();
      methods.clear();
      pending.clear();
    },
  };
}

export const BUILDKIT_STATUS_PATH = "/moby.buildkit.v1.Control/Status";
