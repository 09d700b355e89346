/**
 * @module router/router
 * The build endpoint: terminates the client's mutual TLS, maps the client certificate's serial
 * to one build's builder through the `lookup` it is handed, and pipes bytes to that builder's
 * unix socket. It knows certificates, not builds (builds → router stays one-way): the caller
 * says which serial opens which builder, and tells it when a build ended.
 *
 * Nothing reaches a builder before the certificate is verified (by OpenSSL and again here),
 * the lookup returned a target, the build is not tombstoned and under its connection limit:
 * only then is the builder's socket opened at all.
 *
 * Both ends are Bun's native sockets driven by handlers (Bun.listen with TLS, Bun.connect to the
 * unix socket), not node:tls/node:net streams: per MB relayed that is the cheaper path on Bun
 * (test/bench/router.ts measures both against an mTLS baseline).
 */
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import {
  connectBuilder,
  relayHandlers,
  type BuilderRuntime,
  type ConnectedBuilder,
  type RelayEnd,
  type RelaySocket,
} from "./builder-socket.ts";
import { clientCertVerifierFactory, splitPem } from "./client-cert.ts";
import {
  connectionTableFactory,
  type BuildStats,
  type Direction,
  type RouterStats,
  type TrackedConnection,
} from "./connections.ts";
import type { GrpcTap } from "./grpc-tap.ts";
import { ConnectionRefused, type RefusalReason } from "./errors.ts";

export interface RouteTarget {
  buildId: string;
  projectId: string;
  platform: string;
  /** The builder's unix socket (bind-mounted out of its container). */
  socketPath: string;
  runtime: BuilderRuntime;
}

/** null: no active build for this certificate, or its builder is not ready → refuse. */
export type RouteLookup = (serial: string) => RouteTarget | null;

export interface RouterLimits {
  /** From TCP accept to a verified, routed connection (slowloris). */
  handshakeTimeoutMs: number;
  /** A connection with no byte in either direction for this long is closed. */
  idleTimeoutMs: number;
  maxConnectionsPerBuild: number;
  /** Connecting to the builder socket, including dockerd's /grpc upgrade. */
  builderConnectTimeoutMs: number;
  /** How long an ended build's tombstone and per-build metrics are kept. */
  endedRetentionMs: number;
}

export const DEFAULT_LIMITS: RouterLimits = {
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 15 * 60_000,
  maxConnectionsPerBuild: 32,
  builderConnectTimeoutMs: 10_000,
  endedRetentionMs: 24 * 3_600_000,
};

export interface RouterTls {
  /** The endpoint's certificate chain (leaf then server intermediate), PEM. */
  certPem: string;
  keyPem: string;
  /**
   * Client certificates must be issued by one of these (the build-client intermediates; several
   * during rotation)...
   */
  clientIntermediatesPem: string | readonly string[] | (() => readonly string[]);
  /**
   * ...which chain to these roots. OpenSSL needs the self-signed root to accept a chain at all;
   * trusting a root here does NOT let its other descendants in (see router/client-cert).
   */
  clientRootsPem: string | readonly string[];
}

export interface RouterDeps {
  lookup: RouteLookup;
  /** Watches a routed connection's gRPC traffic (read-only), e.g. for the build's status. */
  observe?: (target: RouteTarget) => GrpcTap | null;
  tls: RouterTls;
  limits?: Partial<RouterLimits>;
  logger: Logger;
  metrics: MetricsRegistry;
  now?: () => Date;
}

export interface BuildRouter {
  listen(addr: { hostname: string; port: number }): Promise<{ port: number }>;
  /** Refuse the build's certificates from now on and close its open connections (at once). */
  buildEnded(buildId: string): void;
  /** Closes the listener and every connection. */
  stop(): Promise<void>;
  stats(): RouterStats;
}

/** A socket being let go: its late events change nothing. */
const IGNORE: RelayEnd = { onData() {}, onDrain() {}, onEnd() {}, onClose() {} };

// TLS 1.2 suites: AEAD with forward secrecy only. TLS 1.3 suites are all modern.
const CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

export function buildRouterFactory(deps: RouterDeps): BuildRouter {
  const limits: RouterLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const now = deps.now ?? (() => new Date());
  const log = deps.logger.child({ component: "router" });
  // Given as a function, the intermediates are re-read (at most once a second) when a
  // certificate names an unknown issuer: an intermediate rotated while serving is trusted at
  // once, without a restart (its clients present it in their chain; the TLS layer trusts the root).
  const source = deps.tls.clientIntermediatesPem;
  const intermediatesNow = () => (typeof source === "function" ? source() : source);
  let verifyCert = clientCertVerifierFactory(intermediatesNow());
  let refreshedAt = 0;
  const verify: typeof verifyCert = (der, at) => {
    try {
      return verifyCert(der, at);
    } catch (e) {
      if (
        typeof source !== "function" ||
        !(e instanceof ConnectionRefused) ||
        e.reason !== "wrong_issuer" ||
        Date.now() - refreshedAt < 1000
      )
        throw e;
      refreshedAt = Date.now();
      verifyCert = clientCertVerifierFactory(intermediatesNow());
      return verifyCert(der, at);
    }
  };
  const roots = splitPem(deps.tls.clientRootsPem);
  if (roots.length === 0) throw new TypeError("router: no client root certificate given");
  const table = connectionTableFactory({
    metrics: deps.metrics,
    retentionMs: limits.endedRetentionMs,
    now: () => now().getTime(),
  });
  /** buildId → when it ended. The lookup should already say null for these; this is the backstop. */
  const tombstones = new Map<string, number>();
  let server: Bun.TCPSocketListener<RelayEnd> | null = null;
  /** Accepted sockets not yet routed, so the handshake deadline and stop() can reach them. */
  const unrouted = new Map<RelaySocket, ReturnType<typeof setTimeout>>();
  let stopping = false;
  let nextId = 1;
  const clientCa = [...roots, ...splitPem(intermediatesNow())];

  const settle = (socket: RelaySocket) => {
    const t = unrouted.get(socket);
    if (t !== undefined) clearTimeout(t);
    unrouted.delete(socket);
  };

  const refuse = (
    socket: RelaySocket,
    reason: RefusalReason,
    message: string,
    fields: Record<string, unknown> = {},
  ) => {
    settle(socket);
    table.refused(reason);
    // Scanners and half-open probes are routine: only refusals of real certificates are info.
    const level = reason === "tls" || reason === "handshake_timeout" ? "debug" : "info";
    log[level]("connection refused", { reason, detail: message, remote: socket.remoteAddress, ...fields });
    socket.data = IGNORE;
    socket.terminate();
  };

  /**
   * The client side: Bun's own TLS sockets with handlers, not node:tls streams — the bench
   * (test/bench/router.ts) measured less CPU per MB for the relay this way. Until the handshake
   * is done a client only has its deadline; `route` takes it from there.
   */
  const clientHandlers = {
    ...relayHandlers,
    open(socket: RelaySocket) {
      if (stopping) return void socket.terminate();
      socket.data = {
        onData() {}, // nothing is readable before the handshake
        onDrain() {},
        onEnd() {},
        onClose: (why) => {
          // Closed before routing: a failed handshake (plain TCP, no or bad certificate, old TLS).
          if (unrouted.has(socket)) refuse(socket, "tls", why);
        },
      };
      unrouted.set(
        socket,
        setTimeout(
          () => refuse(socket, "handshake_timeout", `not routed within ${limits.handshakeTimeoutMs} ms`),
          limits.handshakeTimeoutMs,
        ),
      );
    },
    handshake(socket: RelaySocket, success: boolean, authorizationError: Error | null) {
      if (!success || authorizationError) {
        return refuse(socket, "tls", `handshake failed: ${authorizationError?.message ?? "no client certificate"}`);
      }
      void route(socket).catch((e: unknown) => {
        if (e instanceof ConnectionRefused) refuse(socket, e.reason, e.message);
        else {
          log.error("routing failed", { error: e });
          refuse(socket, "builder_unavailable", "internal error");
        }
      });
    },
  };

  async function route(client: RelaySocket): Promise<void> {
    // Hold the client's bytes in the socket until a builder is there to take them.
    const early: Buffer[] = [];
    client.data = { ...client.data, onData: (c) => void early.push(Buffer.from(c)) };
    client.pause();
    if (stopping) throw new ConnectionRefused("stopping", "router stopping");
    if (!client.authorized) throw new ConnectionRefused("tls", "unauthorized");
    const der = client.getPeerX509Certificate()?.raw;
    if (!der) throw new ConnectionRefused("tls", "no client certificate");
    const { serial } = verify(der, now());

    let target: RouteTarget | null;
    try {
      target = deps.lookup(serial);
    } catch (e) {
      log.error("route lookup failed", { serial, error: e });
      target = null;
    }
    if (!target) throw new ConnectionRefused("no_build", `no active build for certificate ${serial}`);
    const { buildId } = target;
    if (tombstones.has(buildId)) throw new ConnectionRefused("build_ended", `build ${buildId} has ended`);
    if (table.openCount(buildId) >= limits.maxConnectionsPerBuild) {
      throw new ConnectionRefused(
        "too_many_connections",
        `build ${buildId} already has ${limits.maxConnectionsPerBuild} connections`,
      );
    }

    // Registered before the builder is dialled, so buildEnded during the dial closes it too.
    const abort = new AbortController();
    let builder: RelaySocket | null = null;
    let closed = false;
    let tap: GrpcTap | null = null;
    const conn: TrackedConnection = {
      id: nextId++,
      buildId,
      lastActivity: Date.now(),
      close(why) {
        if (closed) return;
        closed = true;
        settle(client);
        table.remove(conn);
        abort.abort();
        tap?.close();
        client.data = IGNORE;
        client.terminate();
        if (builder) {
          builder.data = IGNORE;
          builder.terminate();
        }
        log.debug("connection closed", { conn: conn.id, build_id: buildId, why });
      },
    };
    const stats = table.add(conn, target);
    try {
      tap = deps.observe?.(target) ?? null;
    } catch (e) {
      log.warn("connection observer failed to start", { build_id: buildId, error: e });
    }
    client.data = { ...client.data, onClose: (why) => conn.close(`client ${why}`) };

    let opened: ConnectedBuilder;
    try {
      opened = await connectBuilder(target.socketPath, target.runtime, limits.builderConnectTimeoutMs, abort.signal);
    } catch (e) {
      conn.close("builder unavailable");
      if (e instanceof ConnectionRefused && e.reason === "build_ended") return; // closed by buildEnded, counted there
      if (e instanceof ConnectionRefused) table.refused(e.reason);
      log.warn("builder unavailable", { build_id: buildId, serial, error: e });
      return;
    }
    if (closed) return void opened.socket.terminate();
    builder = opened.socket;
    settle(client);
    log.debug("connection routed", { conn: conn.id, build_id: buildId, serial, runtime: target.runtime });
    const toClient = relay(builder, client, conn, stats, "builder_to_client", tap ? (c) => tap!.fromServer(c) : null);
    const toBuilder = relay(client, builder, conn, stats, "client_to_builder", tap ? (c) => tap!.fromClient(c) : null);
    for (const c of [opened.head, ...opened.later]) if (c.length > 0) toClient(c);
    for (const c of early) toBuilder(c);
    if (opened.closed !== null) return conn.close(`builder ${opened.closed}`);
    client.resume();
    builder.resume();
  }

  /**
   * Moves `from`'s bytes to `to`: written at once while `to` takes them; what it does not take
   * waits in a backlog and `from` is paused until `to` drains (backpressure, bounded memory).
   * Counts bytes, stamps activity for the idle timeout, shows each chunk to the tap. Returns
   * the forwarder, for bytes read before the relay was in place.
   */
  function relay(
    from: RelaySocket,
    to: RelaySocket,
    conn: TrackedConnection,
    stats: BuildStats,
    dir: Direction,
    observe: ((chunk: Buffer) => void) | null,
  ): (chunk: Buffer) => void {
    const backlog: Buffer[] = [];
    let ending = false;
    const forward = (chunk: Buffer) => {
      conn.lastActivity = Date.now();
      table.countBytes(stats, dir, chunk.length);
      observe?.(chunk);
      if (backlog.length > 0) return void backlog.push(Buffer.from(chunk));
      const n = to.write(chunk);
      if (n < 0) return conn.close(`${dir === "client_to_builder" ? "builder" : "client"} write failed`);
      if (n < chunk.length) {
        backlog.push(Buffer.from(chunk.subarray(n)));
        from.pause();
      }
    };
    const toEnd = to.data;
    to.data = {
      ...toEnd,
      onDrain() {
        while (backlog.length > 0) {
          const c = backlog[0]!;
          const n = to.write(c);
          if (n < 0) return conn.close("write failed");
          if (n < c.length) return void (backlog[0] = c.subarray(n));
          backlog.shift();
        }
        if (ending) return void to.end();
        from.resume();
      },
    };
    from.data = {
      ...from.data,
      onData: forward,
      // A half-close on one side is passed on; HTTP/2 never relies on it, but be faithful.
      onEnd() {
        if (backlog.length > 0) ending = true;
        else to.end();
      },
      onClose: (why) => conn.close(`${dir === "client_to_builder" ? "client" : "builder"} ${why}`),
    };
    return forward;
  }

  const sweepMs = Math.max(25, Math.min(1000, Math.floor(limits.idleTimeoutMs / 4)));
  const sweeper = setInterval(() => {
    const t = Date.now();
    for (const c of table.all()) if (t - c.lastActivity > limits.idleTimeoutMs) c.close("idle timeout");
    const cutoff = now().getTime() - limits.endedRetentionMs;
    for (const [id, at] of tombstones) if (at < cutoff) tombstones.delete(id);
    table.prune();
  }, sweepMs);
  sweeper.unref?.();

  return {
    async listen({ hostname, port }) {
      const listener = Bun.listen<RelayEnd>({
        hostname,
        port,
        // Handlers reach each socket's current RelayEnd; half-closes are passed on by the relay.
        allowHalfOpen: true,
        tls: {
          cert: deps.tls.certPem,
          key: deps.tls.keyPem,
          ca: clientCa,
          requestCert: true,
          rejectUnauthorized: true,
          ciphers: CIPHERS,
          // Wire format (length-prefixed): Bun's sockets take the list as bytes.
          ALPNProtocols: Buffer.from("\x02h2", "latin1"),
        },
        data: IGNORE,
        socket: clientHandlers,
      });
      server = listener;
      log.info("build endpoint listening", { hostname, port: listener.port });
      return { port: listener.port };
    },

    buildEnded(buildId) {
      tombstones.set(buildId, now().getTime());
      const open = table.ended(buildId);
      for (const c of open) c.close("build ended");
      if (open.length > 0) log.info("closed connections of ended build", { build_id: buildId, count: open.length });
    },

    async stop() {
      stopping = true;
      clearInterval(sweeper);
      server?.stop(true);
      server = null;
      for (const c of table.all()) c.close("router stopping");
      for (const s of [...unrouted.keys()]) {
        settle(s);
        s.data = IGNORE;
        s.terminate();
      }
    },

    stats: () => table.stats(),
  };
}
