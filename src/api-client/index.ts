/**
 * @module api-client
 * The appliance's API client, for the client-side commands (src/cli/client) and anything else
 * that talks to a Slipway server from outside it: it imports nothing of the server. A small
 * client for Slipway's REST API: JSON in and out, a Bearer token, and the server's CA trusted
 * when one is given. Non-2xx answers (problem+json) become an ApiError whose message is
 * `<title>: <detail>` with any field errors; an unreachable server or an untrusted certificate
 * becomes one clear SlipwayError naming the server.
 */
import { SlipwayError } from "../errors.ts";
import { VERSION } from "../version.ts";

export interface ApiClientOptions {
  server: string;
  token?: string | undefined;
  caPem?: string | undefined;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  request_id?: string;
  errors?: { pointer?: string; detail?: string }[];
}

/** The server answered with an error (exit code 1, like every SlipwayError). */
export class ApiError extends SlipwayError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problemMessage(status, problem), {
      status,
      ...(problem.request_id ? { request_id: problem.request_id } : {}),
    });
  }
}

function problemMessage(status: number, p: Problem): string {
  const title = p.title || `HTTP ${status}`;
  let msg = p.detail ? `${title}: ${p.detail}` : title;
  // A validation detail already quotes the first field error: list each one only once.
  const fields = (p.errors ?? [])
    .filter((e) => e.detail && !p.detail?.includes(e.detail))
    .map((e) => `${e.pointer || "(body)"}: ${e.detail}`);
  if (fields.length > 0) msg += ` (${fields.join("; ")})`;
  return msg;
}

/** Could not talk to the server at all (connection, DNS, TLS, timeout). */
export class UnreachableError extends SlipwayError {
  override name = "UnreachableError";
  constructor(
    message: string,
    /** The failure was the server's certificate not being trusted. */
    readonly untrusted: boolean,
  ) {
    super(message);
  }
}

const TLS_TRUST = /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER)|ALTNAME|HOSTNAME_MISMATCH|SSL|TLS/i;

function unreachable(server: string, e: unknown, caGiven: boolean): UnreachableError {
  const err = e as { code?: string; message?: string; name?: string };
  if (err?.name === "TimeoutError" || err?.name === "AbortError") {
    return new UnreachableError(
      `cannot reach ${server}: no answer in time; is the server running and the address right?`,
      false,
    );
  }
  const code = typeof err?.code === "string" ? err.code : "";
  const reason = (err?.message ?? String(e))
    .replace(/\. For more information, pass `verbose: true`.*$/s, "")
    .replace(/ Is the computer able to access the url\?$/, "");
  const why = code && !reason.includes(code) ? `${reason} (${code})` : reason;
  if (TLS_TRUST.test(code) || TLS_TRUST.test(reason)) {
    const hint = caGiven
      ? "the certificate the server presents does not chain to the given CA (or does not name this host); check --cacert and the server address"
      : "its certificate is not trusted: pass --cacert <data-dir>/ca.pem (the appliance's CA, from the server's data dir) or the CA that issued the server's certificate";
    return new UnreachableError(`cannot reach ${server}: ${why}; ${hint}`, true);
  }
  if (code === "ECONNRESET" && server.startsWith("http://")) {
    return new UnreachableError(
      `cannot reach ${server}: ${why}; the server may only speak HTTPS: try https://${server.slice("http://".length)}`,
      false,
    );
  }
  return new UnreachableError(
    `cannot reach ${server}: ${why}; is the server running? for a private CA pass --cacert`,
    false,
  );
}

export interface RawResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export type ApiClient = ReturnType<typeof apiClientFactory>;

export function apiClientFactory({
  server,
  token,
  caPem,
  timeoutMs = 30_000,
  fetch: fetchFn = fetch,
}: ApiClientOptions) {
  const base = server.replace(/\/+$/, "");

  /** Any answer the server gives, without throwing on status; throws only when unreachable. */
  async function raw<T = unknown>(method: string, path: string, body?: unknown): Promise<RawResponse<T>> {
    const headers: Record<string, string> = {
      accept: "application/json, application/problem+json",
      "user-agent": `slipway-cli/${VERSION}`,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const init: RequestInit & { tls?: { ca: string } } = {
      method,
      headers,
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(caPem ? { tls: { ca: caPem } } : {}),
    };
    let res: Response;
    let text: string;
    try {
      res = await fetchFn(base + path, init);
      text = await res.text();
    } catch (e) {
      throw unreachable(base, e, Boolean(caPem));
    }
    let parsed: unknown;
    if (text !== "") {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { detail: text.slice(0, 200).trim() };
        if (res.ok)
          throw new SlipwayError(
            `${base}${path} answered ${res.status} with something that is not JSON; is ${base} a Slipway server?`,
          );
      }
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  function check<T>(r: RawResponse<unknown>): T {
    if (r.status >= 200 && r.status < 300) return r.body as T;
    const p = (r.body && typeof r.body === "object" ? r.body : {}) as Problem;
    if (r.status >= 300 && r.status < 400) {
      throw new ApiError(r.status, {
        title: `HTTP ${r.status}`,
        detail: `the server redirects to ${r.headers.get("location") ?? "elsewhere"}; pass that address as --server`,
      });
    }
    throw new ApiError(r.status, p);
  }

  return {
    server: base,
    raw,
    /** The body of a 2xx answer from `raw`, or the ApiError for any other. */
    result: check,
    async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
      return check<T>(await raw(method, path, body));
    },
    get<T = unknown>(path: string): Promise<T> {
      return this.request<T>("GET", path);
    },
    post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
      return this.request<T>("POST", path, body);
    },
    put<T = unknown>(path: string, body: unknown): Promise<T> {
      return this.request<T>("PUT", path, body);
    },
    patch<T = unknown>(path: string, body: unknown): Promise<T> {
      return this.request<T>("PATCH", path, body);
    },
    delete<T = unknown>(path: string): Promise<T> {
      return this.request<T>("DELETE", path);
    },
    /** A 2xx answer's body as text (a build's log), or the ApiError for any other. */
    async text(path: string): Promise<string> {
      const headers: Record<string, string> = { "user-agent": `slipway-cli/${VERSION}` };
      if (token) headers.authorization = `Bearer ${token}`;
      let res: Response;
      let text: string;
      try {
        res = await fetchFn(base + path, {
          headers,
          redirect: "manual",
          signal: AbortSignal.timeout(timeoutMs),
          ...(caPem ? { tls: { ca: caPem } } : {}),
        } as RequestInit);
        text = await res.text();
      } catch (e) {
        throw unreachable(base, e, Boolean(caPem));
      }
      if (res.ok) return text;
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = { detail: text.slice(0, 200).trim() };
      }
      return check<string>({ status: res.status, headers: res.headers, body });
    },
    /**
     * Follows a Server-Sent Events stream until `onEvent` answers "stop" or the server refuses
     * (an ApiError, as for any request). A dropped connection is resumed after a second with
     * `Last-Event-ID`, so nothing is seen twice; `reconnects` bounds the attempts in a row.
     */
    async follow(
      path: string,
      onEvent: (e: ServerEvent) => "stop" | undefined,
      { reconnects = 30 }: { reconnects?: number } = {},
    ): Promise<void> {
      let lastId: string | undefined;
      let failures = 0;
      for (;;) {
        const headers: Record<string, string> = {
          accept: "text/event-stream, application/problem+json",
          "user-agent": `slipway-cli/${VERSION}`,
        };
        if (token) headers.authorization = `Bearer ${token}`;
        if (lastId) headers["last-event-id"] = lastId;
        let res: Response;
        try {
          res = await fetchFn(base + path, {
            headers,
            redirect: "manual",
            ...(caPem ? { tls: { ca: caPem } } : {}),
          } as RequestInit);
        } catch (e) {
          if (++failures > reconnects) throw unreachable(base, e, Boolean(caPem));
          await Bun.sleep(1000);
          continue;
        }
        if (!res.ok || !res.body) {
          const text = await res.text().catch(() => "");
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = { detail: text.slice(0, 200).trim() };
          }
          check({ status: res.ok ? 502 : res.status, headers: res.headers, body });
        }
        const stopped = await readEvents(res.body!, (e) => {
          failures = 0;
          if (e.id) lastId = e.id;
          return onEvent(e);
        }).catch(() => false);
        if (stopped) return;
        if (++failures > reconnects)
          throw new UnreachableError(`${base}${path}: the event stream kept ending before its end`, false);
        await Bun.sleep(1000);
      }
    },
  };
}

/** One Server-Sent Event: its name, its data (JSON parsed when it is JSON) and its id. */
export interface ServerEvent {
  event: string;
  data: unknown;
  id?: string | undefined;
}

/** Reads events from `body` until it ends (false) or `onEvent` answers "stop" (true). */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (e: ServerEvent) => "stop" | undefined,
): Promise<boolean> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buf += decoder.decode(value, { stream: true }).replaceAll("\r\n", "\n");
    for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message";
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
        else if (field === "id") id = value;
      }
      if (data.length === 0) continue;
      let parsed: unknown = data.join("\n");
      try {
        parsed = JSON.parse(parsed as string);
      } catch {
        // not JSON: the text as it came
      }
      if (onEvent({ event, data: parsed, id }) === "stop") {
        await reader.cancel().catch(() => {});
        return true;
      }
    }
  }
}

/** A path segment, escaped. */
export const seg = (s: string) => encodeURIComponent(s);
