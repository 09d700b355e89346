/**
 * @module appliance/runtime
 * `slipway serve` as a function: preflight (creates nothing), state, TLS, the HTTP app, a drain
 * (no new builds, running ones finish up to the drain time, the rest are canceled) and a graceful
 * stop (stop accepting, let in-flight requests finish up to a deadline, checkpoint and close the
 * database).
 */
import type { Server } from "bun";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp, type AppDeps } from "../api/app.ts";
import { allowHoldingOpen } from "../api/context.ts";
import { egressServiceFactory, type EgressService } from "../egress/service.ts";
import { startLocalEgressAgents } from "../egress/local.ts";
import { authServiceFactory } from "../auth/index.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { sessionsServiceFactory } from "../auth/sessions.ts";
import { tokensServiceFactory } from "../auth/token-service.ts";
import { trustServiceFactory } from "../auth/trust-service.ts";
import { deviceLoginServiceFactory } from "../auth/device-login.ts";
import { retentionServiceFactory } from "../retention/index.ts";
import { ciTokenVerifierFactory, oidcKeysFactory, parseAllowInternal } from "../auth/oidc/index.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import { quotasServiceFactory } from "../orgs/quotas.ts";
import { parseListenAddress, type LoadedConfig } from "../config/index.ts";
import { checkpointAndClose, migrationStatus, startCheckpointer, type Checkpointer } from "../db/index.ts";
import { HealthRegistry } from "../health/registry.ts";
import type { Logger } from "../log/logger.ts";
import { MetricsRegistry, registerProcessMetrics } from "../metrics/registry.ts";
import { buildRouterFactory, type BuildRouter } from "../router/index.ts";
import { VERSION } from "../version.ts";
import Docker from "dockerode";
import { connectRoutes } from "../api/connect/routes.ts";
import { identityContext, type IdentityServices } from "../api/identity.ts";
import { buildRoutes } from "../api/routes/builds.ts";
import { registryRoutes } from "../api/routes/registry.ts";
import type { Actor } from "../auth/actor.ts";
import { builderCurrencyHealthCheck, builderServiceFactory, builderNetworkPolicyFactory, describeEmulation, exporterCheckFactory, networkPolicyHealthCheck, parseEndpoints, policyNames, type BuilderNetworkPolicy } from "../builders/index.ts";
import { hostExec } from "../egress/apply.ts";
import { PreconditionError } from "../errors.ts";
import { localPlatform } from "../wire/depot.ts";
import { builderImageHealthCheck, builderImageServiceFactory, configuredImage } from "../builders/image/index.ts";
import { buildsServiceFactory, statusToReport, type BuildsService } from "../builds/index.ts";
import { BUILDKIT_STATUS_PATH, grpcResponseTap } from "../router/index.ts";
import { statusObserver } from "./status-tap.ts";
import { drainControllerFactory, type DrainResult } from "./drain.ts";

import { createVolumeManager, type ConfiguredVolumes } from "../volumes/index.ts";
import { BUILDER_ALIAS, builderRegistryHost, registryServiceFactory, type RegistryService } from "../registry/index.ts";

const STATUS_PATHS = new Set([BUILDKIT_STATUS_PATH]);

/** Largest single Connect stream message (a status batch with logs). */
const CONNECT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Largest unary Connect request: the depot CLI's are a few KiB (ReportBuildContext's Dockerfiles the most). */
const CONNECT_MAX_UNARY_BYTES = 1024 * 1024;


async function dockerEngine(docker: Docker): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
  try {
    const v = (await docker.version()) as { Version: string };
    return { ok: true, version: v.Version };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
import { checkPortsFree, checkReadable, prepareDataDir } from "./preflight.ts";
import { defaultPublicUrl, serverNames } from "./server-identity.ts";
import { lockDataDir } from "./lock.ts";
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
  /** Cache volumes (LUKS2, refused, or explicitly plain); builders get theirs from `volumes.manager`. */
  volumes: ConfiguredVolumes;
  /** Egress policies; the builder manager calls `egress.setBuilderAddresses(addrs)` as builders
   * start and stop (agents apply the change within a second). */
  egress: EgressService;
  /** Before stop: no new builds; running ones finish up to server.drain_seconds, the rest are canceled. */
  drain(): Promise<DrainResult>;
  /** Another stop signal during the drain: ends its wait at once (see appliance/drain). */
  interruptDrain(): void;
  /** Every route the API serves (REST and Connect RPC), as mounted: what the authorization matrix
   * and the bad-input sweep must cover. `takesBody`: the route declares a body schema. The
   * registry's /v2/ and its token realm are served before the app and are not listed. */
  routes: MountedRoute[];
  /** Graceful: in-flight requests finish (up to the shutdown timeout), then the DB is closed. */
  stop(): Promise<void>;
}

export interface MountedRoute {
  method: string;
  path: string;
  takesBody: boolean;
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
    ...(config.registry.builder_listen ? [{ name: "builders' registry", flag: "registry.builder_listen", addr: parseListenAddress(config.registry.builder_listen)! }] : []),
  ]);
  const operatorTls = s.tls_cert_file && s.tls_key_file ? { cert: s.tls_cert_file, key: s.tls_key_file } : null;
  checkReadable([
    ...(operatorTls ? [{ key: "server.tls_cert_file", path: operatorTls.cert }, { key: "server.tls_key_file", path: operatorTls.key }] : []),
    ...(config.metrics.bearer_token_file ? [{ key: "metrics.bearer_token_file", path: config.metrics.bearer_token_file }] : []),
    ...(config.secrets.master_key_file ? [{ key: "secrets.master_key_file", path: config.secrets.master_key_file }] : []),
    ...(config.oidc.ca_file ? [{ key: "oidc.ca_file", path: config.oidc.ca_file }] : []),
  ]);
  prepareDataDir(dataDir);
  // One serve per data dir, for this process's life: a second would adopt the first's builders.
  const lock = lockDataDir(dataDir);

  // 2. State.
  let state: ApplianceState;
  try {
    state = await openApplianceState({
      dataDir,
      busyTimeoutMs: config.database.busy_timeout_ms,
      maxClientCertLifetimeMs: config.pki.client_cert_max_lifetime_seconds * 1000,
      masterKeyFile: config.secrets.master_key_file,
      credentialsDirectory: env.CREDENTIALS_DIRECTORY,
      log,
    });
  } catch (e) {
    lock.release();
    throw e;
  }

  let router: BuildRouter | null = null;
  let checkpointer: Checkpointer | null = null;
  let appliedPolicy: BuilderNetworkPolicy | null = null;
  const stoppables: (() => void)[] = [];
  try {
    checkpointer = await startCheckpointer(state.db, state.dbFile, {
      busyTimeoutMs: config.database.busy_timeout_ms,
      onError: (message) => log.warn("WAL checkpoint worker failed; checkpointing on the main thread again", { error: message }),
    });
    const publicUrl = s.public_url ?? defaultPublicUrl(listen.port, https);
    const audit = auditServiceFactory({ db: state.db });
    // The registry's names: clients use the public URL's host:port; builders that same name
    // (mapped to their network's gateway), or an alias when it is loopback (see registry/service).
    const pub = new URL(publicUrl);
    const registryHosts = builderRegistryHost(pub.hostname, Number(pub.port) || 443);
    const registryPublicHost = pub.port ? `${pub.hostname}:${pub.port}` : pub.hostname;

    // 3. TLS.
    let tls: { cert: string; key: string } | undefined;
    let certNotAfter: Date | null = null;
    if (https && operatorTls) {
      tls = { cert: readFileSync(operatorTls.cert, "utf8"), key: readFileSync(operatorTls.key, "utf8") };
    } else if (https) {
      const names = serverNames(publicUrl);
      if (registryHosts.alias && config.registry.enabled) names.dns.push(BUILDER_ALIAS);
      const leaf = await state.pki.issueLeaf({ issuer: "server", usage: "server", commonName: names.dns[names.dns.length - 1] ?? "localhost", names, lifetimeMs: SERVER_CERT_LIFETIME, requester: "appliance:api-server" });
      tls = { cert: leaf.chainPem, key: leaf.keyPem };
      certNotAfter = leaf.notAfter;
      audit.record({
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

    // Cache volumes: decided once here (dm-crypt present? encryption required?), said in the log
    // and in /readyz. Reconciling dm devices and mounts needs the builders that are running, so
    // it runs after the builder manager has reconciled its containers.
    const volumes = createVolumeManager({ config: config.volumes, db: state.db, sealer: state.sealer, dataDir, log });
    health.register(volumes.healthCheck);

    // The registry (saved builds): started before the builders, which learn how to reach it.
    // Its token service authenticates with the API's identity context, made further down.
    let registryActorOf: (request: Request) => Promise<Actor> = async () => ({ kind: "anonymous" });
    let registry: RegistryService | null = null;
    // Builders push on a listener of their own that serves only /v2/: the network policy lets
    // builders reach its port on this host, and not the API's.
    let builderRegistryPort: number | null = null;
    if (config.registry.enabled && https) {
      const srv = listenForBuilders(config.registry.builder_listen ? parseListenAddress(config.registry.builder_listen)! : null, listen.hostname, dataDir, tls!, (req) => registry);
      stoppables.push(() => void srv.stop(true));
      builderRegistryPort = srv.port!;
    }
    const builderRegistry = builderRegistryHost(pub.hostname, builderRegistryPort ?? listen.port);
    if (config.registry.enabled && https) {
      const reg = registryServiceFactory({
        db: state.db,
        sealer: state.sealer,
        log: log.child({ component: "registry" }),
        dataDir,
        settings: config.registry,
        publicHost: registryPublicHost,
        builderHost: builderRegistry.host,
        actorOf: (request) => registryActorOf(request),
        // Builders arrive on their network's gateway: a loopback-only listener never sees them.
        unreachableByBuilders: /^(127\.|localhost$|::1$)/.test(listen.hostname) ? `serve listens only on loopback (server.listen = ${s.listen}); listen on an address builders reach, e.g. 0.0.0.0:${listen.port}` : null,
      });
      registry = reg;
      await reg.start();
      stoppables.push(() => void reg.stop());
      health.register(reg.healthCheck);
    } else if (config.registry.enabled) {
      log.warn("the registry needs HTTPS (builders and Docker refuse plain HTTP registries with credentials): --save and depot pull are unavailable with --insecure-http");
    }
    // 4b. Builders, builds and the build endpoint. builds → router stays one-way: the router is
    //     handed the lookup (serial → active build → ready builder) and told when builds end.
    const docker = new Docker({ socketPath: config.builders.docker_socket });
    let builds: BuildsService | null = null;
    // What builders may reach: applied before any builder is adopted or started; when it cannot be
    // applied serve still starts (the API, the registry for clients), and no builder starts.
    const networkPolicy = builderNetworkPolicyFactory({
      exec: hostExec(),
      names: policyNames(state.applianceId),
      settings: { mode: config.builders.network_policy, allow: config.builders.network_allow.split(",").map((x) => x.trim()).filter(Boolean), mirrors: parseEndpoints(config.builders.network_mirrors) },
      registryPort: builderRegistryPort,
      apiPort: listen.port,
    });
    appliedPolicy = networkPolicy;
    try {
      await networkPolicy.apply();
      if (config.builders.network_policy === "enforce") log.info("builder network policy in force", { bridges: `${networkPolicy.names.bridgePrefix}+`, registry_port: builderRegistryPort });
    } catch (e) {
      log.error("the builder network policy cannot be applied: no builder will start", { error: (e as Error).message });
    }
    // A firewall reload (or `iptables -F`) drops our rules: re-applied within 10 s.
    const policyTimer = setInterval(() => {
      networkPolicy.check().then(
        (reapplied) => reapplied && log.warn("builder network policy was missing and has been re-applied"),
        (e) => log.error("builder network policy re-apply failed: no builder will start", { error: (e as Error).message }),
      );
    }, 10_000);
    policyTimer.unref?.();
    stoppables.push(() => clearInterval(policyTimer));
    health.register(networkPolicyHealthCheck(networkPolicy));
    const egress = egressServiceFactory({
      db: state.db,
      audit,
      applianceHosts: [new URL(publicUrl).hostname.replace(/^\[|\]$/g, ""), buildPublic.hostname],
      extraAllow: config.egress.extra_allow.split(",").map((x) => x.trim()).filter(Boolean),
    });
    const quotas = quotasServiceFactory({ db: state.db, audit, defaults: config.quotas });
    // Builders read projects and organizations through the services that own those tables.
    const orgs = orgsServiceFactory({ db: state.db, audit });
    const projects = projectsServiceFactory({ db: state.db, audit, quotas, release: (projectId) => builders.releaseProject(projectId) });
    const builders = builderServiceFactory({
      db: state.db,
      // listIds answers no row for a missing project, as projectSettings must.
      projects: { projectSettings: (projectId) => projects.listIds([projectId])[0] ?? null, projectOrgs: (projectIds) => new Map(projects.listIds([...projectIds]).map((p) => [p.id, p.org_id])) },
      orgs,
      docker,
      volumes: volumes.manager,
      applianceId: state.applianceId,
      dataDir,
      runtime: config.builders.runtime,
      image: config.builders.runtime === "dockerd" ? config.builders.dockerd_image : config.builders.buildkitd_image,
      log: log.child({ component: "builders" }),
      pidsLimit: config.builders.pids_limit,
      containerdStore: config.builders.dockerd_containerd_store,
      insecureRegistries: config.builders.insecure_registries.split(",").map((x) => x.trim()).filter(Boolean),
      allowEmulation: config.builders.allow_emulation,
      // Off: builder networks get Docker's own bridge names and builders from any earlier serve are
      // adopted; enforced, only builders on bridges the policy filters are.
      ...(config.builders.network_policy === "enforce" ? { networkPolicy } : {}),
      // The public host:port names the registry for builders too (the policy leads them from the
      // API's port to their listener): trusted under both names.
      ...(registry ? { registry: { host: builderRegistry.host, aliases: registryHosts.host !== builderRegistry.host ? [registryHosts.host] : [], caPem: operatorTls ? tls!.cert : readFileSync(state.caFile, "utf8") } } : {}),
      readyTimeoutMs: config.builders.ready_timeout_seconds * 1000,
      quotas,
      maxRunning: config.builders.max_running,
      queueTimeoutMs: config.builders.queue_timeout_seconds * 1000,
      onBuilderLost: ({ holders, reason }) => builds?.builderLost(holders, reason),
      // Runners may always reach builders: agents get the set within a second.
      onAddresses: (addrs) => egress.setBuilderAddresses(addrs),
    });
    stoppables.push(() => builders.close());
    router = buildRouterFactory({
      lookup: (serial) => builds?.route(serial) ?? null,
      // BuildKit's own status for the build (the depot CLI reports only its own steps).
      observe: (target) =>
        grpcResponseTap(STATUS_PATHS, statusObserver(target.buildId, { builds: () => builds, log })),
      tls: { certPem: buildLeaf.chainPem, keyPem: buildLeaf.keyPem, clientIntermediatesPem: () => state.pki.trustBundle("build-client"), clientRootsPem: state.pki.trustBundle("root") },
      logger: log.child({ component: "build-endpoint" }),
      metrics,
    });
    const activeRouter = router;
    const builderImages = builderImageServiceFactory({ docker, log });
    const configuredBuilderImage = configuredImage(config.builders);
    const exporters = exporterCheckFactory({
      runtime: config.builders.runtime,
      containerdStore: config.builders.dockerd_containerd_store,
      suiteOf: async () => (await builderImages.inspect(configuredBuilderImage.image)).suite ?? null,
    });
    builds = buildsServiceFactory({
      db: state.db,
      pki: state.pki,
      builders,
      router: { buildEnded: (id) => activeRouter.buildEnded(id) },
      audit,
      log: log.child({ component: "builds" }),
      publicUrl,
      buildEndpoint,
      healthTimeoutMs: config.builds.health_timeout_seconds * 1000,
      logMaxBytes: config.builds.log_max_bytes,
      cancelGraceMs: config.builds.cancel_grace_seconds * 1000,
      exporters,
    });
    const buildsService = builds;
    const sweeper = setInterval(() => {
      try {
        buildsService.sweep();
      } catch (e) {
        log.error("build sweep failed", { error: e as Error });
      }
    }, 1000);
    stoppables.push(() => clearInterval(sweeper));
    const drain = drainControllerFactory({ builds: buildsService, log, drainMs: s.drain_seconds * 1000, liveWithinMs: config.builds.health_timeout_seconds * 1000 });
    // A draining server is not ready: a load balancer stops sending it new work.
    health.register(drain.healthCheck);
    const engine = await dockerEngine(docker);
    if (engine.ok) {
      const r = await builders.reconcile();
      const failed = buildsService.failOrphans(r.lost);
      log.info("builders reconciled", { adopted: r.adopted.length, removed: r.removed.length, lost: r.lost.length, builds_failed: failed.length });
      // Volumes second: keep open exactly what the adopted builders use.
      await volumes.reconcile(builders.running());
      await builders.watch();
      await exporters.refresh();
    } else {
      log.warn("the Docker engine is not reachable: builds cannot run until it is", { socket: config.builders.docker_socket, error: engine.error });
    }
    health.register(builderImageHealthCheck(builderImages, configuredBuilderImage));
    health.register(builderCurrencyHealthCheck(builders));
    health.register({
      name: "builders:docker",
      run: async () => {
        const e = await dockerEngine(docker);
        return e.ok ? { status: "pass", output: `Docker ${e.version}; runtime ${config.builders.runtime}` } : { status: "warn", output: `Docker engine unreachable at ${config.builders.docker_socket}: ${e.error}` };
      },
    });
    // Whether the other platform can be built here (QEMU user emulation): handler and setting.
    health.register({
      name: "builders:emulation",
      run: async () => {
        const d = describeEmulation(await builders.emulation());
        return { status: d.status === "ok" ? "pass" : "warn", output: d.message };
      },
    });
    const resetCache = async (projectId: string, actor: Actor) => {
      const r = await builders.resetCache(projectId);
      audit.record({ orgId: (state.db.query("SELECT org_id FROM projects WHERE id = ?").get(projectId) as { org_id: string }).org_id, actor, action: "cache.reset", target: projectId, details: r });
      return r;
    };
    await router!.listen(buildListen);
    health.register({ name: "build-endpoint:listening", run: () => ({ status: "pass", output: `${buildEndpoint.endpoint} (server name ${buildEndpoint.serverName})` }) });

    // 5. HTTP.
    const metricsToken = config.metrics.bearer_token_file ? readFileSync(config.metrics.bearer_token_file, "utf8").trim() || null : null;
    let server: Server<undefined> | null = null;
    const db = state.db;
    const auth = authServiceFactory({ db });
    const tokens = tokensServiceFactory({ db, audit });
    const allowInternal = parseAllowInternal(config.oidc.allow_internal);
    const oidcCa = config.oidc.ca_file ? readFileSync(config.oidc.ca_file, "utf8") : undefined;
    const identity: IdentityServices = {
      auth,
      audit,
      sessions: sessionsServiceFactory({ db, audit }),
      orgs,
      projects,
      quotas,
      tokens,
      trust: trustServiceFactory({ db, audit, tokens, allowInternal, verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ allowInternal, ...(oidcCa ? { ca: oidcCa } : {}) }) }) }),
      deviceLogins: deviceLoginServiceFactory({ db, audit, tokens, tokenLifetimeMs: config.auth.device_token_days * 86400_000 }),
      egress,
      publicUrl,
    };
    // Expired logins, sessions and tokens and old build logs: pruned now and on a timer.
    stoppables.push(retentionServiceFactory({ db, log: log.child({ component: "retention" }), settings: config.retention }).start());
    const clientAddress = (req: Request) => server?.requestIP(req)?.address ?? null;
    const ctx = identityContext(identity, clientAddress);
    registryActorOf = (request) => ctx.actorOf(request);
    const app = createApp({
      log,
      health,
      metrics,
      auth,
      identity,
      version: VERSION,
      options: { maxBodyBytes: s.max_body_bytes, hstsMaxAgeSeconds: https ? s.hsts_max_age_seconds : null, metricsBearerToken: metricsToken },
      clientAddress,
      plugins: [
        connectRoutes({ ctx, builds: buildsService, resetCache: async (id, actor) => void (await resetCache(id, actor)), log, defaultPlatform: localPlatform(), maxUnaryBytes: CONNECT_MAX_UNARY_BYTES, maxMessageBytes: CONNECT_MAX_MESSAGE_BYTES, ...(registry ? { registry } : {}), imageExport: () => exporters.canPush() }),
        buildRoutes({ ctx, builds: buildsService, builders, encryption: volumes.manager.encryption, resetCache }),
        ...(registry ? [registryRoutes({ ctx, registry })] : []),
        ...(plugins ?? []),
      ],
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
      // Build status streams are long chunked uploads; the app limits each message itself.
      maxRequestBodySize: Math.max(s.max_body_bytes * 4, 1024 * 1024 * 1024),
      tls,
      // Registry paths (/v2/, the token realm) bypass the app: their bodies stream, unparsed.
      fetch: (req, srv) => {
        allowHoldingOpen(req, () => srv.timeout(req, 0));
        // A garbage collection of a large store runs longer than Bun's 10 s idle timeout.
        if (registry && req.method === "POST" && req.url.endsWith("/api/v1/registry/gc")) srv.timeout(req, 0);
        return registry?.handle(req) ?? app.handle(req);
      },
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
      volumes,
      egress,
      drain: () => drain.drain(),
      interruptDrain: () => drain.interrupt(),
      routes: app.routes.map((r) => ({ method: r.method, path: r.path, takesBody: (r.hooks as { body?: unknown } | undefined)?.body !== undefined })),
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
          for (const stop of stoppables) stop();
          await removePolicy(appliedPolicy, log);
          await checkpointer?.stop();
          checkpointAndClose(state.db);
          lock.release();
        })();
        return stopping;
      },
    };
  } catch (e) {
    await router?.stop(); // a start that fails halfway leaves nothing listening
    for (const stop of stoppables) stop();
    await removePolicy(appliedPolicy, log);
    await checkpointer?.stop();
    state.db.close();
    lock.release();
    throw e;
  }
}

/**
 * The builders' registry listener: /v2/ of the appliance's registry and nothing else. Its port is
 * `registry.builder_listen`'s, or one chosen once and kept in the data dir: builders name the
 * registry host:port (dockerd's certs.d directory too), so an adopted builder keeps working.
 */
function listenForBuilders(
  configured: { hostname: string; port: number } | null,
  hostname: string,
  dataDir: string,
  tls: { cert: string; key: string },
  registry: (req: Request) => RegistryService | null,
): Server<undefined> {
  const options = {
    tls,
    // Layers stream through here as through the API's listener (same body ceiling), and a large
    // blob's final PUT may be quiet while the registry verifies its digest.
    maxRequestBodySize: 1024 * 1024 * 1024,
    idleTimeout: 255,
    fetch: (req: Request) => {
      const path = new URL(req.url).pathname;
      const reg = registry(req);
      if (reg && (path === "/v2" || path.startsWith("/v2/"))) return reg.handle(req) ?? new Response(null, { status: 404 });
      return new Response(null, { status: 404 });
    },
    error: () => new Response(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "internal error" }] }), { status: 500, headers: { "content-type": "application/json" } }),
  };
  if (configured) return Bun.serve({ hostname: configured.hostname, port: configured.port, ...options });
  const file = join(dataDir, "builder-registry-port");
  let remembered = 0;
  try {
    remembered = Number(readFileSync(file, "utf8").trim()) || 0;
  } catch {
    // first start
  }
  let srv: Server<undefined>;
  try {
    srv = Bun.serve({ hostname, port: remembered, ...options });
  } catch (e) {
    throw new PreconditionError(`the builders' registry port ${remembered} (kept in ${file}) cannot be listened on: ${(e as Error).message}; free it, or set registry.builder_listen`);
  }
  if (srv.port !== remembered) writeFileSync(file, `${srv.port}\n`, { mode: 0o600 });
  return srv;
}

async function removePolicy(policy: BuilderNetworkPolicy | null, log: Logger) {
  // Builders outlive serve, but without serve nothing reaches them (the build endpoint is serve's).
  await policy?.remove().catch((e) => log.warn("builder network policy removal failed", { error: (e as Error).message }));
}
