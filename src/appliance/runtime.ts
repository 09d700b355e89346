/**
 * @module appliance/runtime
 * `slipway serve` as a function: preflight (creates nothing), state, TLS, the HTTP app, and a
 * graceful stop (stop accepting, let in-flight requests finish up to a deadline, checkpoint and
 * close the database).
 */
import type { Server } from "bun";
import { readFileSync } from "node:fs";
import { createApp, type AppDeps } from "../api/app.ts";
import { egressServiceFactory, type EgressService } from "../egress/service.ts";
import { startLocalEgressAgents } from "../egress/local.ts";
import { authServiceFactory } from "../auth/index.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { sessionsServiceFactory } from "../auth/sessions.ts";
import { tokensServiceFactory } from "../auth/token-service.ts";
import { trustServiceFactory } from "../auth/trust-service.ts";
import { deviceLoginServiceFactory } from "../auth/device-login.ts";
import { ciTokenVerifierFactory, oidcKeysFactory } from "../auth/oidc/index.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import { parseListenAddress, type LoadedConfig } from "../config/index.ts";
import { checkpointAndClose, migrationStatus, startCheckpointer, type Checkpointer } from "../db/index.ts";
import { HealthRegistry } from "../health/registry.ts";
import type { Logger } from "../log/logger.ts";
import { MetricsRegistry, registerProcessMetrics } from "../metrics/registry.ts";
import { buildRouterFactory, type BuildRouter } from "../router/index.ts";
import { VERSION } from "../version.ts";
import { checkPortsFree, checkReadable, prepareDataDir } from "./preflight.ts";
import { defaultPublicUrl, serverNames } from "./server-identity.ts";
import { openApplianceState, type ApplianceState } from "./state.ts";

const DAY = 86_400_000;
/** Re-issued at every start; /readyz warns when a long-running server gets close to expiry. */
const SERVER_CERT_LIFETIME = 397 * DAY;

/** Where clients reach the build endpoint: what the build API hands them. */
export interface BuildEndpoint {
  /** e.g. tcp://builds.example.com:8444 */
  endpoint: string;
  /** The name the client verifies the endpoint's certificate against. */
  serverName: string;
}

export interface RunningAppliance {
  /** A URL that reaches this server from this machine. */
  localUrl: string;
  publicUrl: string;
  port: number;
  state: ApplianceState;
  router: BuildRouter;
  buildEndpoint: BuildEndpoint;
  /** Egress policies; the builder manager calls `egress.setBuilderAddresses(addrs)` as builders
   * start and stop (agents apply the change within a second). */
  egress: EgressService;
  /** Graceful: in-flight requests finish (up to the shutdown timeout), then the DB is closed. */
  stop(): Promise<void>;
}

export interface StartOptions {
  loaded: LoadedConfig;
  log: Logger;
  env: Record<string, string | undefined>;
  /** Route modules mounted after the built-in ones (capabilities; tests). */
  plugins?: AppDeps["plugins"];
}

export async function startAppliance({ loaded, log, env, plugins }: StartOptions): Promise<RunningAppliance> {
  const { config, dataDir } = loaded;
  const s = config.server;
  const listen = parseListenAddress(s.listen)!;
  const buildListen = parseListenAddress(s.build_listen)!;
  const https = !s.insecure_http;

  // 1. Everything that can fail without side effects.
  await checkPortsFree([
    { name: "API", flag: "--listen", addr: listen },
    { name: "build endpoint", flag: "--build-listen", addr: buildListen },
  ]);
  const operatorTls = s.tls_cert_file && s.tls_key_file ? { cert: s.tls_cert_file, key: s.tls_key_file } : null;
  checkReadable([
    ...(operatorTls ? [{ key: "server.tls_cert_file", path: operatorTls.cert }, { key: "server.tls_key_file", path: operatorTls.key }] : []),
    ...(config.metrics.bearer_token_file ? [{ key: "metrics.bearer_token_file", path: config.metrics.bearer_token_file }] : []),
    ...(config.secrets.master_key_file ? [{ key: "secrets.master_key_file", path: config.secrets.master_key_file }] : []),
  ]);
  prepareDataDir(dataDir);

  // 2. State.
  const state = await openApplianceState({
    dataDir,
    busyTimeoutMs: config.database.busy_timeout_ms,
    maxClientCertLifetimeMs: config.pki.client_cert_max_lifetime_seconds * 1000,
    masterKeyFile: config.secrets.master_key_file,
    credentialsDirectory: env.CREDENTIALS_DIRECTORY,
    log,
  });

  let router: BuildRouter | null = null;
  let checkpointer: Checkpointer | null = null;
  try {
    checkpointer = await startCheckpointer(state.db, state.dbFile, {
      busyTimeoutMs: config.database.busy_timeout_ms,
      onError: (message) => log.warn("WAL checkpoint worker failed; checkpointing on the main thread again", { error: message }),
    });
    const publicUrl = s.public_url ?? defaultPublicUrl(listen.port, https);

    // 3. TLS.
    let tls: { cert: string; key: string } | undefined;
    let certNotAfter: Date | null = null;
    if (https && operatorTls) {
      tls = { cert: readFileSync(operatorTls.cert, "utf8"), key: readFileSync(operatorTls.key, "utf8") };
    } else if (https) {
      const names = serverNames(publicUrl);
      const leaf = await state.pki.issueLeaf({ issuer: "server", usage: "server", commonName: names.dns[names.dns.length - 1] ?? "localhost", names, lifetimeMs: SERVER_CERT_LIFETIME, requester: "appliance:api-server" });
      tls = { cert: leaf.chainPem, key: leaf.keyPem };
      certNotAfter = leaf.notAfter;
      auditServiceFactory({ db: state.db }).record({
        actor: "appliance",
        action: "certificate.issue",
        target: leaf.serial,
        details: { usage: "server", requester: "appliance:api-server", names, not_after: leaf.notAfter.toISOString() },
      });
    } else {
      log.warn("serving plain HTTP (--insecure-http): credentials cross the network unencrypted; use only for local development");
    }

    // 4. The build endpoint's identity: the address clients dial, which may differ from where it
    //    listens (NAT, TCP load balancer). Its certificate comes from the server intermediate.
    const buildPublic = parseListenAddress(s.build_public_address ?? `${new URL(publicUrl).hostname.replace(/^\[|\]$/g, "")}:${buildListen.port}`)!;
    const buildEndpoint: BuildEndpoint = {
      endpoint: `tcp://${buildPublic.hostname.includes(":") ? `[${buildPublic.hostname}]` : buildPublic.hostname}:${buildPublic.port}`,
      serverName: buildPublic.hostname,
    };
    const buildNames = serverNames(`https://${buildPublic.hostname.includes(":") ? `[${buildPublic.hostname}]` : buildPublic.hostname}`);
    const buildLeaf = await state.pki.issueLeaf({ issuer: "server", usage: "server", commonName: buildEndpoint.serverName, names: buildNames, lifetimeMs: SERVER_CERT_LIFETIME, requester: "appliance:build-endpoint" });

    // 4. Health and metrics.
    const health = new HealthRegistry();
    health.register({ name: "database:open", run: () => (state.db.query("SELECT 1 AS ok").get(), { status: "pass" }) });
    health.register({
      name: "database:migrations",
      run: () => {
        const st = migrationStatus(state.db);
        return st.pending.length === 0
          ? { status: "pass", observedValue: st.current }
          : { status: "fail", observedValue: st.current, output: `${st.pending.length} migration(s) pending` };
      },
    });
    if (certNotAfter) {
      const notAfter = certNotAfter;
      health.register({
        name: "tls:certificate",
        run: () => {
          const days = Math.floor((notAfter.getTime() - Date.now()) / DAY);
          return days < 30
            ? { status: "warn", observedValue: days, output: `API certificate expires in ${days} days; restart slipway to renew it` }
            : { status: "pass", observedValue: days };
        },
      });
    }
    const metrics = new MetricsRegistry();
    registerProcessMetrics(metrics, VERSION);

    // No builds exist yet: every connection is refused until the builds capability supplies
    // the lookup (serial → active build → ready builder).
    router = buildRouterFactory({
      lookup: () => null,
      tls: { certPem: buildLeaf.chainPem, keyPem: buildLeaf.keyPem, clientIntermediatesPem: () => state.pki.trustBundle("build-client"), clientRootsPem: state.pki.trustBundle("root") },
      logger: log.child({ component: "build-endpoint" }),
      metrics,
    });
    await router!.listen(buildListen);
    health.register({ name: "build-endpoint:listening", run: () => ({ status: "pass", output: `${buildEndpoint.endpoint} (server name ${buildEndpoint.serverName})` }) });

    // 5. HTTP.
    const metricsToken = config.metrics.bearer_token_file ? readFileSync(config.metrics.bearer_token_file, "utf8").trim() || null : null;
    let server: Server<undefined> | null = null;
    const db = state.db;
    const audit = auditServiceFactory({ db });
    const auth = authServiceFactory({ db });
    const tokens = tokensServiceFactory({ db, audit });
    const egress = egressServiceFactory({
      db,
      audit,
      applianceHosts: [new URL(publicUrl).hostname.replace(/^\[|\]$/g, ""), buildPublic.hostname],
      extraAllow: config.egress.extra_allow.split(",").map((x) => x.trim()).filter(Boolean),
    });
    const app = createApp({
      log,
      health,
      metrics,
      auth,
      identity: {
        auth,
        audit,
        sessions: sessionsServiceFactory({ db, audit }),
        orgs: orgsServiceFactory({ db, audit }),
        projects: projectsServiceFactory({ db, audit }),
        tokens,
        trust: trustServiceFactory({ db, audit, tokens, verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ fetch }) }) }),
        deviceLogins: deviceLoginServiceFactory({ db, audit, tokens }),
        egress,
        publicUrl,
      },
      version: VERSION,
      options: { maxBodyBytes: s.max_body_bytes, hstsMaxAgeSeconds: https ? s.hsts_max_age_seconds : null, metricsBearerToken: metricsToken },
      clientAddress: (req) => server?.requestIP(req)?.address ?? null,
      plugins,
    });
    // Runners colocated with the appliance: enforced by serve itself (off by default).
    const localEgress = config.egress.local_agent
      ? await startLocalEgressAgents({ egress, log, hostsFile: config.egress.hosts_file, nflogGroup: config.egress.nflog_group, graceMs: config.egress.grace_seconds * 1000 })
      : null;
    if (localEgress) log.info("egress: enforcing local runner hosts", { count: localEgress.agents.length });
    server = Bun.serve({
      hostname: listen.hostname,
      port: listen.port,
      // Above the app's own limit: the app answers oversize bodies with problem+json itself;
      // this only stops a runaway upload that ignores the 413.
      maxRequestBodySize: s.max_body_bytes * 4,
      tls,
      fetch: (req) => app.handle(req),
      error: (e) => {
        log.error("unhandled server error", { error: e });
        return new Response(JSON.stringify({ type: "urn:slipway:problem:internal", title: "Internal error", status: 500 }), {
          status: 500,
          headers: { "content-type": "application/problem+json" },
        });
      },
    });

    const scheme = https ? "https" : "http";
    const localHost = listen.hostname === "0.0.0.0" || listen.hostname === "::" ? "localhost" : listen.hostname;
    const localUrl = `${scheme}://${localHost.includes(":") ? `[${localHost}]` : localHost}:${server.port}`;
    const shutdownMs = s.shutdown_timeout_seconds * 1000;
    let stopping: Promise<void> | null = null;

    return {
      localUrl,
      publicUrl,
      port: server.port!,
      state,
      router: router!,
      buildEndpoint,
      egress,
      stop() {
        stopping ??= (async () => {
          const srv = server!;
          await localEgress?.stop(); // rules stay in force
          await router!.stop();
          const graceful = srv.stop(false);
          const timedOut = await Promise.race([graceful.then(() => false), Bun.sleep(shutdownMs).then(() => true)]);
          if (timedOut) {
            log.warn("shutdown timeout reached; closing remaining connections", { timeout_seconds: s.shutdown_timeout_seconds });
            await srv.stop(true);
          }
          await checkpointer?.stop();
          checkpointAndClose(state.db);
        })();
        return stopping;
      },
    };
  } catch (e) {
    await router?.stop(); // a start that fails halfway leaves nothing listening
    await checkpointer?.stop();
    state.db.close();
    throw e;
  }
}
