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
 */
import tls from "node:tls";
import type net from "node:net";
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import { openBuilderSocket, type BuilderRuntime } from "./builder-socket.ts";
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
  /** Accepted sockets not yet routed, so the handshake deadline and stop() can reach them. */
  const unrouted = new Map<tls.TLSSocket, ReturnType<typeof setTimeout>>();
  let stopping = false;
  let nextId = 1;

  const server = tls.createServer({
    cert: deps.tls.certPem,
    key: deps.tls.keyPem,
    ca: [...roots, ...splitPem(intermediatesNow())],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    ciphers: CIPHERS,
    honorCipherOrder: true,
    ALPNProtocols: ["h2"],
  });

  const refuse = (socket: net.Socket, reason: RefusalReason, message: string, fields: Record<string, unknown> = {}) => {
    settle(socket as tls.TLSSocket);
    table.refused(reason);
    // Scanners and half-open probes are routine: only refusals of real certificates are info.
    const level = reason === "tls" || reason === "handshake_timeout" ? "debug" : "info";
    log[level]("connection refused", { reason, detail: message, remote: socket.remoteAddress, ...fields });
    socket.destroy();
  };

  const settle = (socket: tls.TLSSocket) => {
    const t = unrouted.get(socket);
    if (t !== undefined) clearTimeout(t);
    unrouted.delete(socket);
  };

  // 'connection' hands us the socket before the handshake: start the slowloris clock. (Node's
  // own handshakeTimeout option only reports the timeout under Bun; it does not close.)
  server.on("connection", (socket: tls.TLSSocket) => {
    if (stopping) return void socket.destroy();
    unrouted.set(
      socket,
      setTimeout(
        () => refuse(socket, "handshake_timeout", `not routed within ${limits.handshakeTimeoutMs} ms`),
        limits.handshakeTimeoutMs,
      ),
    );
    socket.once("close", () => settle(socket));
  });

  server.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
    refuse(socket, "tls", err.message);
  });

  server.on("secureConnection", (socket: tls.TLSSocket) => {
    void route(socket).catch((e: unknown) => {
      if (e instanceof ConnectionRefused) refuse(socket, e.reason, e.message);
      else {
        log.error("routing failed", { error: e });
        refuse(socket, "builder_unavailable", "internal error");
      }
    });
  });

  async function route(client: tls.TLSSocket): Promise<void> {
    // Hold the client's bytes in the TLS socket until a builder is there to take them.
    client.pause();
    if (stopping) throw new ConnectionRefused("stopping", "router stopping");
    if (!client.authorized) throw new ConnectionRefused("tls", `unauthorized: ${String(client.authorizationError)}`);
    const peer = client.getPeerCertificate(true);
    if (!peer?.raw) throw new ConnectionRefused("tls", "no client certificate");
    const { serial } = verify(peer.raw, now());

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
    let builder: net.Socket | null = null;
    let closed = false;
    const conn: TrackedConnection = {
      id: nextId++,
      buildId,
      lastActivity: Date.now(),
      close(why) {
        if (closed) return;
        closed = true;
        table.remove(conn);
        abort.abort();
        client.destroy();
        builder?.destroy();
        log.debug("connection closed", { conn: conn.id, build_id: buildId, why });
      },
    };
    const stats = table.add(conn, target);
    let tap: GrpcTap | null = null;
    try {
      tap = deps.observe?.(target) ?? null;
    } catch (e) {
      log.warn("connection observer failed to start", { build_id: buildId, error: e });
    }
    if (tap) client.once("close", () => tap!.close());
    client.once("close", () => conn.close("client closed"));
    client.on("error", (e) => conn.close(`client error: ${e.message}`));

    let opened: Awaited<ReturnType<typeof openBuilderSocket>>;
    try {
      opened = await openBuilderSocket(target.socketPath, target.runtime, limits.builderConnectTimeoutMs, abort.signal);
    } catch (e) {
      conn.close("builder unavailable");
      if (e instanceof ConnectionRefused && e.reason === "build_ended") return; // closed by buildEnded, counted there
      if (e instanceof ConnectionRefused) table.refused(e.reason);
      log.warn("builder unavailable", { build_id: buildId, serial, error: e });
      return;
    }
    if (closed) return void opened.socket.destroy();
    builder = opened.socket;
    settle(client);
    log.debug("connection routed", { conn: conn.id, build_id: buildId, serial, runtime: target.runtime });
    if (opened.head.length > 0) {
      table.countBytes(stats, "builder_to_client", opened.head.length);
      tap?.fromServer(opened.head);
      client.write(opened.head);
    }
    pipe(client, builder, conn, stats, "client_to_builder", tap ? (c) => tap!.fromClient(c) : null);
    pipe(builder, client, conn, stats, "builder_to_client", tap ? (c) => tap!.fromServer(c) : null);
    builder.once("close", () => conn.close("builder closed"));
    builder.on("error", (e) => conn.close(`builder error: ${e.message}`));
  }

  /** stream.pipe, plus byte counting and activity stamps for the idle timeout. */
  function pipe(
    from: net.Socket,
    to: net.Socket,
    conn: TrackedConnection,
    stats: BuildStats,
    dir: Direction,
    observe: ((chunk: Buffer) => void) | null,
  ) {
    from.on("data", (chunk: Buffer) => {
      conn.lastActivity = Date.now();
      table.countBytes(stats, dir, chunk.length);
      observe?.(chunk);
      if (!to.write(chunk)) from.pause();
    });
    to.on("drain", () => from.resume());
    // A half-close on one side is passed on; HTTP/2 never relies on it, but be faithful.
    from.once("end", () => to.end());
    from.resume();
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
    listen({ hostname, port }) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, hostname, () => {
          server.off("error", reject);
          const addr = server.address();
          const bound = typeof addr === "object" && addr ? addr.port : port;
          log.info("build endpoint listening", { hostname, port: bound });
          resolve({ port: bound });
        });
      });
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
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of table.all()) c.close("router stopping");
      for (const s of [...unrouted.keys()]) {
        settle(s);
        s.destroy();
      }
      await closed;
    },

    stats: () => table.stats(),
  };
}
