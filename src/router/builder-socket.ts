/**
 * @module router/builder-socket
 * Opens the byte stream to a builder: its unix socket, and for the `dockerd` runtime the
 * `POST /grpc` h2c upgrade first (dockerd serves its embedded BuildKit's gRPC API only behind
 * that upgrade). After this resolves, the socket carries BuildKit's HTTP/2 and nothing else.
 */
import net from "node:net";
import { ConnectionRefused } from "./errors.ts";

export type BuilderRuntime = "buildkitd" | "dockerd";

export interface OpenedBuilder {
  socket: net.Socket;
  /** Bytes the builder sent right after the 101 response head; forward them first. */
  head: Buffer;
}

const UPGRADE_REQUEST =
  "POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n";
/** A 101 head is a few hundred bytes; anything longer is not dockerd answering us. */
const MAX_HEAD = 16 * 1024;

/**
 * Reads dockerd's answer to the /grpc upgrade from what arrived so far: null while the head is
 * incomplete, a refusal for anything but 101, or the bytes after the head (the start of HTTP/2).
 */
function upgradeAnswer(buf: Buffer): null | ConnectionRefused | { rest: Buffer } {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0)
    return buf.length > MAX_HEAD
      ? new ConnectionRefused("builder_unavailable", "oversized upgrade response from dockerd")
      : null;
  const status = buf.subarray(0, buf.indexOf("\r\n")).toString("latin1");
  if (!/^HTTP\/1\.[01] 101 /.test(status))
    return new ConnectionRefused("builder_unavailable", `dockerd refused the /grpc upgrade: ${status.slice(0, 80)}`);
  return { rest: buf.subarray(end + 4) };
}

/**
 * Connects to `socketPath`; rejects with ConnectionRefused("builder_unavailable") on connect
 * failure, timeout, or a non-101 upgrade answer. `signal` aborts (the build ended meanwhile).
 */
export function openBuilderSocket(
  socketPath: string,
  runtime: BuilderRuntime,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<OpenedBuilder> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: socketPath });
    let settled = false;
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: ConnectionRefused | null, head: Buffer = Buffer.alloc(0)) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        socket.pause();
        resolve({ socket, head });
      }
    };
    const onAbort = () => finish(new ConnectionRefused("build_ended", "build ended while connecting to its builder"));
    const onError = (e: Error) => finish(new ConnectionRefused("builder_unavailable", `builder socket: ${e.message}`));
    const onClose = () =>
      finish(new ConnectionRefused("builder_unavailable", "builder closed the connection during the upgrade"));
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const answer = upgradeAnswer(buf);
      if (answer)
        finish(answer instanceof ConnectionRefused ? answer : null, "rest" in answer ? answer.rest : undefined);
    };
    const timer = setTimeout(
      () => finish(new ConnectionRefused("builder_unavailable", `builder did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.once("connect", () => {
      if (runtime === "buildkitd") return finish(null);
      socket.on("data", onData);
      socket.write(UPGRADE_REQUEST);
    });
  });
}

/**
 * What one end of a relayed connection does with its events. The router swaps these as the
 * connection moves on (handshake → upgrade → relay), so one handler set serves every state.
 */
export interface RelayEnd {
  onData(chunk: Buffer): void;
  onDrain(): void;
  /** The peer half-closed. */
  onEnd(): void;
  onClose(why: string): void;
}

export type RelaySocket = Bun.Socket<RelayEnd>;

/** Bun's socket handlers, forwarding to the socket's current RelayEnd. */
export const relayHandlers = {
  data: (s: RelaySocket, chunk: Buffer) => s.data.onData(chunk),
  drain: (s: RelaySocket) => s.data.onDrain(),
  end: (s: RelaySocket) => s.data.onEnd(),
  close: (s: RelaySocket, err?: Error) => s.data.onClose(err ? `error: ${err.message}` : "closed"),
  error: (s: RelaySocket, err: Error) => s.data.onClose(`error: ${err.message}`),
} as const;

export interface ConnectedBuilder {
  socket: RelaySocket;
  /** Bytes the builder sent right after the 101 response head; forward them first. */
  head: Buffer;
  /** Anything read, and why it closed, before the caller installed its RelayEnd. */
  later: Buffer[];
  closed: string | null;
}

/**
 * openBuilderSocket on Bun's native sockets, for the router's relay: no stream layer between
 * the socket and the bytes (measured: less CPU per MB than node:net). The returned socket's
 * `data` is a RelayEnd the caller replaces; until then it drops nothing (chunks are kept in
 * `later`) — the caller installs its own before the next tick.
 */
export function connectBuilder(
  socketPath: string,
  runtime: BuilderRuntime,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ConnectedBuilder> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let socket: RelaySocket | null = null;
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: ConnectionRefused | null, head: Buffer = Buffer.alloc(0)) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (err) {
        socket?.terminate();
        reject(err);
      } else {
        // Nothing more is read until the caller has its relay in place.
        socket!.pause();
        const opened: ConnectedBuilder = { socket: socket!, head, later: [], closed: null };
        socket!.data = {
          onData: (c) => void opened.later.push(Buffer.from(c)),
          onDrain() {},
          onEnd() {},
          onClose: (why) => void (opened.closed = why),
        };
        resolve(opened);
      }
    };
    const onAbort = () => finish(new ConnectionRefused("build_ended", "build ended while connecting to its builder"));
    const state: RelayEnd = {
      onData(chunk) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk);
        const answer = upgradeAnswer(buf);
        if (answer)
          finish(answer instanceof ConnectionRefused ? answer : null, "rest" in answer ? answer.rest : undefined);
      },
      onDrain() {},
      onEnd() {
        finish(new ConnectionRefused("builder_unavailable", "builder closed the connection during the upgrade"));
      },
      onClose(why) {
        finish(new ConnectionRefused("builder_unavailable", `builder socket: ${why}`));
      },
    };
    const timer = setTimeout(
      () => finish(new ConnectionRefused("builder_unavailable", `builder did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    Bun.connect<RelayEnd>({ unix: socketPath, data: state, socket: relayHandlers }).then(
      (s) => {
        socket = s;
        if (settled) return void s.terminate();
        if (runtime === "buildkitd") return finish(null);
        s.write(UPGRADE_REQUEST);
      },
      (e: Error) => finish(new ConnectionRefused("builder_unavailable", `builder socket: ${e.message}`)),
    );
  });
}
