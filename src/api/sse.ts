/**
 * @module api/sse
 * Server-Sent Events as a `Response` over a `ReadableStream`: what the live routes answer once
 * the caller is authorized (before that, errors are ordinary problem documents). Comments every
 * few seconds keep proxies from closing an idle stream; a stream ends when its producer closes
 * it or the client goes away, and either way `onClose` runs exactly once (so subscriptions are
 * released). At every keep-alive the caller's credential is checked again, so a revoked token
 * or session (or one that expired) stops its streams within one interval. `x-accel-buffering: no`
 * and `cache-control: no-cache` keep intermediaries from holding events back.
 */
import { ResourceExhaustedError } from "../errors.ts";

export interface SseSink {
  /** One event; `data` goes out as JSON on one line. */
  send(event: string, data: unknown, id?: string): void;
  close(): void;
}

const encoder = new TextEncoder();

export function sseResponse(
  request: Request,
  opts: {
    /** Starts producing: send what is stored, subscribe; returns the release of what it holds. */
    start: (sink: SseSink) => () => void;
    heartbeatMs?: number;
    /** Whether the request's credential still holds (asked at every keep-alive); false ends the stream. */
    stillAuthorized?: () => Promise<boolean>;
    /** Runs once when the stream ends, whoever ended it. */
    onClose?: () => void;
  },
): Response {
  let release: (() => void) | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;
  let closed = false;
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  const finish = () => {
    if (closed) return;
    closed = true;
    if (timer) clearInterval(timer);
    request.signal.removeEventListener("abort", finish);
    release?.();
    release = null;
    opts.onClose?.();
    try {
      controller?.close();
    } catch {
      // already closed or cancelled by the client
    }
  };
  const write = (text: string) => {
    if (closed || !controller) return;
    try {
      controller.enqueue(encoder.encode(text));
    } catch {
      finish();
    }
  };
  const sink: SseSink = {
    send(event, data, id) {
      write(`event: ${event}\n${id ? `id: ${id}\n` : ""}data: ${JSON.stringify(data)}\n\n`);
    },
    close: finish,
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      // Tells EventSource how soon to come back after a dropped connection.
      write("retry: 2000\n\n");
      request.signal.addEventListener("abort", finish);
      timer = setInterval(async () => {
        if (opts.stillAuthorized && !(await opts.stillAuthorized().catch(() => false))) return finish();
        write(": keep-alive\n\n");
      }, opts.heartbeatMs ?? 15_000);
      try {
        const r = opts.start(sink);
        if (closed) r();
        else release = r;
      } catch (e) {
        finish();
        throw e;
      }
    },
    cancel: finish,
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}

/** Streams open per credential; more are refused (429) so one caller cannot hold the server's sockets. */
export function streamLimiter(maxPerCredential: number) {
  const open = new Map<string, number>();
  return {
    /** Counts one stream for `key`, or refuses; the returned function gives it back (once). */
    acquire(key: string): () => void {
      const n = open.get(key) ?? 0;
      if (n >= maxPerCredential)
        throw new ResourceExhaustedError(
          `${maxPerCredential} live streams are open for this credential already: close one (a browser tab) first`,
        );
      open.set(key, n + 1);
      let given = false;
      return () => {
        if (given) return;
        given = true;
        const m = (open.get(key) ?? 1) - 1;
        if (m <= 0) open.delete(key);
        else open.set(key, m);
      };
    },
    openCount: (key: string) => open.get(key) ?? 0,
  };
}
