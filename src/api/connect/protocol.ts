/**
 * @module api/connect/protocol
 * The Connect protocol as the depot CLI speaks it: unary calls with the proto or JSON codec,
 * client streams and server streams framed as flag byte + 4-byte length + payload, and errors as
 * `{"code", "message"}` — in the body of a non-200 reply for unary calls, in the end-of-stream
 * frame for streams. Typed service errors map to Connect codes here and only here.
 */
import { DeviceLoginGoneError } from "../../auth/device-login.ts";
import { RateLimitedError } from "../../auth/rate-limit.ts";
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, PayloadTooLargeError, PreconditionError, QuotaExceededError, ResourceExhaustedError, SlipwayError, UnauthenticatedError, UnavailableError } from "../../errors.ts";
import { fromJson, toJson } from "../../wire/json.ts";
import { decode, encode, ProtoError, ProtoLimitError, type MessageType, type Msg } from "../../wire/proto.ts";

export type Codec = "proto" | "json";

export type ConnectCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "internal"
  | "unimplemented"
  | "canceled"
  | "deadline_exceeded";

const HTTP_STATUS: Record<ConnectCode, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 400,
  resource_exhausted: 429,
  unavailable: 503,
  internal: 500,
  unimplemented: 501,
  canceled: 499,
  deadline_exceeded: 504,
};

export class ConnectError extends Error {
  override name = "ConnectError";
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
  }
}

/** The Connect code and the message safe to show for `e`; `unexpected` → log it, say little. */
export function connectErrorOf(e: unknown): { code: ConnectCode; message: string; unexpected: boolean } {
  if (e instanceof ConnectError) return { code: e.code, message: e.message, unexpected: false };
  if (e instanceof ProtoLimitError) return { code: "resource_exhausted", message: `request too large: ${e.message}`, unexpected: false };
  if (e instanceof ProtoError) return { code: "invalid_argument", message: `malformed request: ${e.message}`, unexpected: false };
  const typed: [new (...a: never[]) => SlipwayError, ConnectCode][] = [
    [InvalidInputError, "invalid_argument"],
    [UnauthenticatedError, "unauthenticated"],
    [ForbiddenError, "permission_denied"],
    [NotFoundError, "not_found"],
    [ConflictError, "failed_precondition"],
    [DeviceLoginGoneError, "not_found"],
    [PayloadTooLargeError, "resource_exhausted"],
    [RateLimitedError, "resource_exhausted"],
    [QuotaExceededError, "resource_exhausted"],
    [ResourceExhaustedError, "resource_exhausted"],
    [PreconditionError, "failed_precondition"],
    [UnavailableError, "unavailable"],
  ];
  for (const [cls, code] of typed) if (e instanceof cls) return { code, message: e.message, unexpected: false };
  if (e instanceof SlipwayError) return { code: "unavailable", message: e.message, unexpected: false };
  return { code: "internal", message: "the server failed to handle this call; its log has the details under this request id", unexpected: true };
}

/** The codec a request asks for, from its Content-Type; null when it is not Connect. */
export function codecOf(contentType: string | null, stream: boolean): Codec | null {
  const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (stream) return ct === "application/connect+proto" ? "proto" : ct === "application/connect+json" ? "json" : null;
  return ct === "application/proto" || ct === "application/protobuf" ? "proto" : ct === "application/json" ? "json" : null;
}

export function decodeMessage(type: MessageType, codec: Codec, bytes: Uint8Array): Msg {
  if (codec === "proto") return decode(type, bytes);
  let json: unknown;
  try {
    const text = new TextDecoder().decode(bytes);
    json = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    throw new ProtoError("the body is not valid JSON");
  }
  return fromJson(type, json);
}

export function encodeMessage(type: MessageType, codec: Codec, msg: Msg): Uint8Array {
  return codec === "proto" ? encode(type, msg) : new TextEncoder().encode(JSON.stringify(toJson(type, msg)));
}

export function unaryError(code: ConnectCode, message: string, requestId: string): Response {
  return new Response(JSON.stringify({ code, message }), { status: HTTP_STATUS[code], headers: { "content-type": "application/json", "x-request-id": requestId } });
}

/** One envelope: flags, big-endian length, payload. */
export function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

export function endStreamFrame(error: { code: ConnectCode; message: string } | null): Uint8Array {
  return frame(0x02, new TextEncoder().encode(JSON.stringify(error ? { error } : {})));
}

/**
 * Reads envelopes from a streamed request body, yielding each message payload. Stops at the end
 * of the body or an end-of-stream frame; a frame larger than `maxFrame` is refused.
 */
export async function* readFrames(body: ReadableStream<Uint8Array> | null, maxFrame: number): AsyncGenerator<Uint8Array> {
  if (!body) return;
  const reader = body.getReader();
  let buf = new Uint8Array(0);
  const append = (chunk: Uint8Array) => {
    const next = new Uint8Array(buf.length + chunk.length);
    next.set(buf);
    next.set(chunk, buf.length);
    buf = next;
  };
  try {
    for (;;) {
      while (buf.length >= 5) {
        const flags = buf[0]!;
        const len = new DataView(buf.buffer, buf.byteOffset + 1, 4).getUint32(0);
        if (len > maxFrame) throw new ConnectError("resource_exhausted", `a stream message of ${len} bytes exceeds the limit of ${maxFrame}`);
        if (buf.length < 5 + len) break;
        const payload = buf.slice(5, 5 + len);
        buf = buf.slice(5 + len);
        if (flags & 0x02) return;
        if (flags & 0x01) throw new ConnectError("invalid_argument", "compressed stream messages are not supported");
        yield payload;
      }
      const { done, value } = await reader.read();
      if (done) {
        if (buf.length > 0) throw new ConnectError("invalid_argument", "the stream ended inside a message");
        return;
      }
      append(value);
    }
  } finally {
    reader.releaseLock();
  }
}
