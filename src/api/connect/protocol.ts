/**
 * @module api/connect/protocol
 * What Slipway adds around @connectrpc/connect's universal handlers to serve them inside Elysia:
 * the fetch Request ↔ universal request bridge (carrying the Request to the handlers), gzip for
 * Content-Encoding / Connect-Content-Encoding, the decoder's element limit, and the mapping of
 * typed service errors to Connect codes — here and only here.
 */
import { gunzip, gzip, gzipSync } from "node:zlib";
import { promisify } from "node:util";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import {
  universalServerRequestFromFetch,
  universalServerResponseToFetch,
  type Compression,
  type UniversalHandler,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { DeviceLoginGoneError } from "../../auth/device-login.ts";
import { RateLimitedError } from "../../auth/rate-limit.ts";
import type { DescMessage } from "@bufbuild/protobuf";
import { checkDecodeLimits, DecodeLimitError } from "../../wire/limits.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionError,
  QuotaExceededError,
  ResourceExhaustedError,
  SlipwayError,
  UnauthenticatedError,
  UnavailableError,
} from "../../errors.ts";

export { Code, ConnectError };

/** The fetch Request a call came in on (for the identity, the client address, holding it open). */
export const REQUEST = createContextKey<Request | null>(null, { description: "the fetch Request" });

/** The Connect code and the message safe to show for `e`; `unexpected` → log it, say little. */
export function connectErrorOf(e: unknown): { code: Code; message: string; unexpected: boolean } {
  if (e instanceof ConnectError) return { code: e.code, message: e.rawMessage, unexpected: false };
  const typed: [new (...a: never[]) => SlipwayError, Code][] = [
    [InvalidInputError, Code.InvalidArgument],
    [UnauthenticatedError, Code.Unauthenticated],
    [ForbiddenError, Code.PermissionDenied],
    [NotFoundError, Code.NotFound],
    [ConflictError, Code.FailedPrecondition],
    [DeviceLoginGoneError, Code.NotFound],
    [PayloadTooLargeError, Code.ResourceExhausted],
    [RateLimitedError, Code.ResourceExhausted],
    [QuotaExceededError, Code.ResourceExhausted],
    [ResourceExhaustedError, Code.ResourceExhausted],
    [PreconditionError, Code.FailedPrecondition],
    [UnavailableError, Code.Unavailable],
  ];
  for (const [cls, code] of typed) if (e instanceof cls) return { code, message: e.message, unexpected: false };
  if (e instanceof SlipwayError) return { code: Code.Unavailable, message: e.message, unexpected: false };
  return {
    code: Code.Internal,
    message: "the server failed to handle this call; its log has the details under this request id",
    unexpected: true,
  };
}

/** Connect's wire name of a code (`invalid_argument`, …). */
export const codeName = (code: Code): string => Code[code]!.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);
/** Up to this size a reply is gzip-compressed synchronously (well under a millisecond). */
const SYNC_GZIP_BYTES = 64 * 1024;

/** A request the decoding limit refuses, as Connect answers it. */
const tooLarge = (e: DecodeLimitError) => new ConnectError(e.message, Code.ResourceExhausted);

/** Checks a binary message against the decoding limit (see wire/limits.ts). */
function checked(input: DescMessage | null, bytes: Uint8Array): Uint8Array {
  if (!input) return bytes;
  try {
    checkDecodeLimits(input, bytes);
  } catch (e) {
    if (e instanceof DecodeLimitError) throw tooLarge(e);
    throw e;
  }
  return bytes;
}

/**
 * gzip for request and response bodies (Content-Encoding, Connect-Content-Encoding): the depot
 * CLI's Go client asks for it. A body that inflates past the read limit is refused, unread
 * further; with `input`, an inflated binary message is held to the decoding limit.
 */
export function compressionGzip(input: DescMessage | null): Compression {
  return {
    name: "gzip",
    // A small reply (a unary one, typically a few KB) is compressed at once: a round trip through
    // the thread pool would cost more than the compression itself.
    compress: async (bytes) =>
      new Uint8Array(bytes.length <= SYNC_GZIP_BYTES ? gzipSync(bytes) : await gzipAsync(bytes)),
    async decompress(bytes, readMaxBytes) {
      if (bytes.length === 0) return new Uint8Array(0);
      let out: Uint8Array<ArrayBuffer>;
      try {
        out = new Uint8Array(await gunzipAsync(bytes, { maxOutputLength: Math.max(readMaxBytes, 1) }));
      } catch (e) {
        if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE")
          throw new ConnectError(
            `message is larger than configured readMaxBytes ${readMaxBytes} after decompression`,
            Code.ResourceExhausted,
          );
        throw new ConnectError("the body is not valid gzip", Code.InvalidArgument);
      }
      return checked(input, out) as Uint8Array<ArrayBuffer>;
    },
  };
}

/**
 * A request body as it passes to the library. A stream's is handed on one envelope (flags,
 * big-endian length, payload) per chunk, so each message reaches the handler before the next is
 * read (the library decodes all the envelopes of a chunk at once: a refused one would take those
 * before it along). With `input` (a binary body), every uncompressed message is held to the
 * decoding limit first: a unary body when it ends, a stream's envelopes as they complete.
 * Nothing is buffered past `readMaxBytes` (the library refuses such a body itself).
 */
async function* limitedBody(
  body: AsyncIterable<Uint8Array>,
  input: DescMessage | null,
  stream: boolean,
  compressed: boolean,
  readMaxBytes: number,
): AsyncIterable<Uint8Array> {
  if (!stream) {
    const held: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (input && !compressed && size <= readMaxBytes) held.push(chunk.slice());
      yield chunk;
    }
    if (input && !compressed && size <= readMaxBytes)
      checked(input, held.length === 1 ? held[0]! : Buffer.concat(held));
    return;
  }
  let buf: Uint8Array = new Uint8Array(0);
  let passThrough = false;
  for await (const chunk of body) {
    if (passThrough) {
      yield chunk;
      continue;
    }
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = new DataView(buf.buffer, buf.byteOffset + 1, 4).getUint32(0);
      if (len > readMaxBytes) {
        passThrough = true; // the library refuses it from its header
        break;
      }
      if (buf.length < 5 + len) break;
      const envelope = buf.subarray(0, 5 + len);
      if (input && (envelope[0]! & 0x01) === 0) checked(input, envelope.subarray(5));
      yield envelope;
      buf = buf.subarray(5 + len);
    }
    if (passThrough || buf.length === 0) {
      if (buf.length) yield buf;
      buf = new Uint8Array(0);
    }
  }
  if (buf.length) yield buf; // an incomplete envelope: the library says so
}

/**
 * Decoding errors as a client should read them. @connectrpc/connect reports a binary body it
 * cannot parse as `internal` ("parse binary: …"): for a server that is the client's mistake, so
 * it is answered as `invalid_argument`, as the JSON codec's are. A JSON field of the wrong type
 * is named by its JSON pointer (`/buildId: expected string, got 12`).
 */
function parseErrorAsClientError(json: { code?: string; message?: string }): { code: string; message: string } | null {
  const message = json.message ?? "";
  if (json.code === "internal" && message.startsWith("parse binary: "))
    return { code: "invalid_argument", message: `malformed request: ${message.slice("parse binary: ".length)}` };
  const field =
    json.code === "invalid_argument" ? /^cannot decode field [\w.]+\.(\w+) from JSON: (.*)$/s.exec(message) : null;
  if (field) return { code: "invalid_argument", message: `malformed request: /${jsonName(field[1]!)}: ${field[2]}` };
  return null;
}

/** A proto field name as its JSON name (protoc's lowerCamelCase). */
const jsonName = (protoName: string) => protoName.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

const HTTP_STATUS_OF: Record<string, number> = { invalid_argument: 400 };

async function rewriteParseErrors(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (!res.body) return res;
  if ((res.status === 500 || res.status === 400) && !res.header?.get("content-encoding")) {
    const chunks: Uint8Array[] = [];
    for await (const c of res.body) chunks.push(c);
    const bytes = Buffer.concat(chunks);
    let error: { code?: string; message?: string } = {};
    try {
      error = JSON.parse(bytes.toString("utf8")) as typeof error;
    } catch {
      // not the library's error JSON: passed on as it is
    }
    const fixed = parseErrorAsClientError(error);
    if (!fixed)
      return {
        ...res,
        body: (async function* () {
          yield new Uint8Array(bytes);
        })(),
      };
    const out = new TextEncoder().encode(JSON.stringify(fixed));
    const header = new Headers(res.header);
    header.set("content-length", String(out.length));
    header.delete("content-encoding");
    return {
      ...res,
      status: HTTP_STATUS_OF[fixed.code]!,
      header,
      body: (async function* () {
        yield out;
      })(),
    };
  }
  if (res.status !== 200 || !(res.header?.get("content-type") ?? "").startsWith("application/connect+")) return res;
  // A stream: its end frame (flag 0x02, one envelope per chunk) carries the error.
  const body = res.body;
  return {
    ...res,
    body: (async function* () {
      for await (const c of body) {
        if (
          c.length >= 5 &&
          c[0] === 0x02 &&
          new DataView(c.buffer, c.byteOffset + 1, 4).getUint32(0) === c.length - 5
        ) {
          const end = JSON.parse(new TextDecoder().decode(c.subarray(5))) as {
            error?: { code?: string; message?: string };
          };
          const fixed = end.error ? parseErrorAsClientError(end.error) : null;
          if (fixed) {
            yield endStreamFrame(fixed);
            continue;
          }
        }
        yield c;
      }
    })(),
  };
}

/** A signal that never aborts. */
const NEVER = new AbortController().signal;

async function* chunksOf(body: ReadableStream<Uint8Array> | null): AsyncIterable<Uint8Array> {
  if (!body) return;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** A body no longer than the call may read, by its Content-Length, taken whole: read chunk by
 * chunk through its ReadableStream it cost several turns of the event loop per call. */
async function* wholeBody(request: Request): AsyncIterable<Uint8Array> {
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.length > 0) yield bytes;
}

/**
 * Runs a universal handler on a fetch Request, the Request itself in the call's context values;
 * a binary body passes through the decoding limit on its way (`input`, `readMaxBytes`).
 */
export async function serveUniversal(
  handler: UniversalHandler,
  request: Request,
  limits: { input: DescMessage; readMaxBytes: number },
  extraHeaders: Record<string, string>,
): Promise<Response> {
  const contextValues = createContextValues().set(REQUEST, request);
  const contentType = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const stream = contentType.startsWith("application/connect+");
  // A unary call is not watched for its client leaving (its deadline still ends it): listening
  // on a request's signal makes the server track the connection, which costs on every call.
  // Without a Content-Length (chunked), or with one past the limit, the body is read as a stream
  // and the library stops at readMaxBytes: nothing past the limit is buffered either way.
  const length = Number(request.headers.get("content-length") ?? Number.NaN);
  const whole = Number.isSafeInteger(length) && length >= 0 && length <= limits.readMaxBytes;
  const universal = stream
    ? universalServerRequestFromFetch(request, {})
    : {
        httpVersion: "",
        method: request.method,
        url: request.url,
        header: request.headers,
        body: whole ? wholeBody(request) : chunksOf(request.body),
        signal: NEVER,
      };
  const binary = contentType.endsWith("proto") || contentType === "application/protobuf";
  if (binary || stream) {
    const encoding = request.headers
      .get(stream ? "connect-content-encoding" : "content-encoding")
      ?.trim()
      .toLowerCase();
    const compressed = Boolean(encoding && encoding !== "identity");
    universal.body = limitedBody(
      universal.body as AsyncIterable<Uint8Array>,
      binary ? limits.input : null,
      stream,
      compressed,
      limits.readMaxBytes,
    );
  }
  if (contentType === "application/protobuf") {
    universal.header = new Headers(universal.header);
    universal.header.set("content-type", "application/proto"); // an alias the library does not know
  }
  const res = await rewriteParseErrors(await handler({ ...universal, contextValues }));
  const header = new Headers(res.header);
  for (const [k, v] of Object.entries(extraHeaders)) header.set(k, v);
  if (stream || !res.body) return universalServerResponseToFetch({ ...res, header });
  // A unary reply is one message, already whole: sent as a fixed body, not pulled through a
  // ReadableStream chunk by chunk (which costs several turns of the event loop per reply).
  const chunks: Uint8Array[] = [];
  for await (const c of res.body) chunks.push(c);
  return new Response(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), {
    status: res.status,
    headers: header,
  });
}

/** One envelope: flags, big-endian length, payload. */
export function frame(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** A stream's end: `{}` or `{"error": {code, message}}`, in an envelope flagged 0x02. */
export function endStreamFrame(error: { code: string; message: string } | null): Uint8Array {
  return frame(0x02, new TextEncoder().encode(JSON.stringify(error ? { error } : {})));
}

/** A unary call's error: the code's HTTP status, `{"code", "message"}`. */
export function unaryError(code: Code, message: string, requestId: string): Response {
  const status: Record<number, number> = {
    [Code.InvalidArgument]: 400,
    [Code.Unimplemented]: 501,
    [Code.Unauthenticated]: 401,
  };
  return new Response(JSON.stringify({ code: codeName(code), message }), {
    status: status[code] ?? 500,
    headers: { "content-type": "application/json", "x-request-id": requestId },
  });
}

/** Whether a Content-Type is Connect's, and which kind: `unary`, `stream`, or null for neither. */
export function connectContentKind(contentType: string | null): "unary" | "stream" | null {
  const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (ct === "application/connect+proto" || ct === "application/connect+json") return "stream";
  if (ct === "application/proto" || ct === "application/protobuf" || ct === "application/json") return "unary";
  return null;
}
