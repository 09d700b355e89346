/**
 * @module appliance/runtime
 * `slipway serve` as a function: preflight (creates nothing), state, TLS, the HTTP app, a drain
 * (no new builds, running ones finish up to the drain time, the rest are canceled) and a graceful
 * stop (stop accepting, let in-flight requests finish up to a deadline, checkpoint and close the
 * database). Wiring only: it makes the services and hands each the others it needs; what the
 * appliance does (a cache reset, a build, pruning) is written in the service that owns it.
 */
import type { Server } from "bun";
import type { Database } from "bun:sqlite";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp, type AppDeps } from "../api/app.ts";
import { allowHoldingOpen } from "../api/context.ts";
import { egressServiceFactory, type EgressService } from "../egress/service.ts";
import { startLocalEgressAgents } from "../egress/local.ts";
import { authServiceFactory } from "../auth/index.ts";
import { auditServiceFactory, type AuditService } from "../auth/audit.ts";
import { sessionsServiceFactory } from "../auth/sessions.ts";
import { tokensServiceFactory, type TokensService } from "../auth/api-tokens.ts";
import { trustServiceFactory } from "../auth/ci-trusts.ts";
import { deviceLoginServiceFactory } from "../auth/device-login.ts";
import { retentionServiceFactory } from "../retention/index.ts";
import { ciTokenVerifierFactory, oidcKeysFactory, parseAllowInternal } from "../auth/oidc/index.ts";
import { orgsServiceFactory, type OrgsService } from "../orgs/service.ts";
import { projectsServiceFactory, type ProjectsService } from "../projects/service.ts";
import { quotasServiceFactory, quotaUsageOf, type QuotasService } from "../orgs/quotas.ts";
import { parseListenAddress, type ListenAddress, type LoadedConfig } from "../config/index.ts";
import { checkpointAndClose, migrationStatus, startCheckpointer, type Checkpointer } from "../db/index.ts";
import { HealthRegistry } from "../health/registry.ts";
import type { Logger } from "../log/logger.ts";
import { MetricsRegistry, registerProcessMetrics } from "../metrics/registry.ts";
import { buildRouterFactory, type BuildRouter } from "../router/index.ts";
import { VERSION } from "../version.ts";
import Docker from "dockerode";
import { connectRoutes } from "../api/connect/routes.ts";
import { identityContext, type IdentityServices } from "../api/identity.ts";
import type { Actor } from "../auth/actor.ts";
import {
  builderCurrencyHealthCheck,
  builderServiceFactory,
  builderNetworkPolicyFactory,
  describeEmulation,
  exporterCheckFactory,
  networkPolicyHealthCheck,
  parseEndpoints,
  policyNames,
  type BuilderService,
  type BuilderNetworkPolicy,
} from "../builders/index.ts";
import { hostExec } from "../host/exec.ts";
import { PreconditionError, UnavailableError } from "../errors.ts";
import { localPlatform } from "../wire/depot.ts";
import {
  builderImageHealthCheck,
  builderImageServiceFactory,
  configuredImage,
  judgeImage,
} from "../builders/image/index.ts";
import { buildLogsFactory, buildsServiceFactory, type BuildsService } from "../builds/index.ts";
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
  /** Egress policies; the builder service calls `egress.setBuilderAddresses(addrs)` as builders
   * start and stop (agents apply the change within a second). */
  egress: EgressService;
  /** Before stop: no new builds; running ones finish up to server.drain_seconds, the rest are canceled. */
  drain(): Promise<DrainResult>;
  /** Another stop signal during the drain: ends its wait at once (see appliance/drain). */
  interruptDrain(): void;
  /** Builds in flight now (what a drain waits for): for the service manager's status line. */
  buildsInFlight(): number;
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

// About 240 lines once formatted (each call's arguments one per line): the start-up in order, each
// step a call to a function below; splitting it further would hide the order.
export async function startAppliance({ loaded, log, env, plugins }: StartOptions): Promise<RunningAppliance> {
  const { config, dataDir } = loaded;
  const s = config.server;
  const listen = parseListenAddress(s.listen)!;
  const buildListen = parseListenAddress(s.build_listen)!;
  const https = !s.insecure_http;

  // 1. Everything that can fail without side effects; then the data dir, locked, and its state.
  const operatorTls = s.tls_cert_file && s.tls_key_file ? { cert: s.tls_cert_file, key: s.tls_key_file } : null;
  await preflight(config, { listen, buildListen, operatorTls });
  const { lock, state } = await claimDataDir({ config, dataDir, env, log });

  let router: BuildRouter | null = null;
  let checkpointer: Checkpointer | null = null;
  const policy: { applied: BuilderNetworkPolicy | null } = { applied: null };
  const stoppables: (() => void)[] = [];
  try {
    checkpointer = await startCheckpointer(state.db, state.dbFile, {
      busyTimeoutMs: config.database.busy_timeout_ms,
      onError: (message) =>
        log.warn("WAL checkpoint worker failed; checkpointing on the main thread again", { error: message }),
    });
    const publicUrl = s.public_url ?? defaultPublicUrl(listen.port, https);
    const audit = auditServiceFactory({ db: state.db });
    // The registry's names: clients use the public URL's host:port; builders that same name
    // (mapped to their network's gateway), or an alias when it is loopback (see registry/service).
    const pub = new URL(publicUrl);
    const registryHosts = builderRegistryHost(pub.hostname, Number(pub.port) || 443);

    // 3. TLS, and the build endpoint's identity.
    const { tls, certNotAfter } = await serverTls({
      https,
      operatorTls,
      publicUrl,
      withBuilderAlias: registryHosts.alias && config.registry.enabled,
      state,
      audit,
      log,
    });
    const { buildEndpoint, buildPublic, buildLeaf } = await buildEndpointIdentity({
      buildPublicAddress: s.build_public_address,
      publicUrl,
      buildListen,
      state,
    });

    // 4. Health and metrics.
    const { health, metrics } = healthAndMetrics(state, certNotAfter);

    // Cache volumes: decided once here, said in the log and /readyz; reconciled after the builders.
    const volumes = createVolumeManager({ config: config.volumes, db: state.db, sealer: state.sealer, dataDir, log });
    health.register(volumes.healthCheck);

    // The tables' owners. What they ask of builders and builds (made later) is bound late.
    const fleet: { builders: BuilderService | null; builds: BuildsService | null } = { builders: null, builds: null };
    const tenants = tenantServicesFactory({
      db: state.db,
      audit,
      config,
      fleet,
      applianceHosts: [pub.hostname.replace(/^\[|\]$/g, ""), buildPublic.hostname],
    });
    const { egress } = tenants;

    // The registry (saved builds): started before the builders, which learn how to reach it.
    // Its token service authenticates with the API's identity context, made further down.
    let registryActorOf: (request: Request) => Promise<Actor> = async () => ({ kind: "anonymous" });
    const caPem = () => (operatorTls ? tls!.cert : readFileSync(state.caFile, "utf8"));
    const saved = await startRegistry({
      config,
      dataDir,
      listen,
      https,
      tls,
      pub,
      registryHosts,
      caPem,
      state,
      log,
      health,
      stoppables,
      projects: tenants.projects,
      builds: { find: (id) => fleet.builds?.find(id) ?? null },
      actorOf: (request) => registryActorOf(request),
    });
    const { registry } = saved;

    // 4b. Builders, builds and the build endpoint. builds → router stays one-way: the router is
    //     handed the lookup (serial → active build → ready builder) and told when builds end.
    const docker = new Docker({ socketPath: config.builders.docker_socket });
    policy.applied = await applyNetworkPolicy({
      config,
      applianceId: state.applianceId,
      registryPort: saved.builderRegistryPort,
      apiPort: listen.port,
      log,
      health,
      stoppables,
    });
    const builders = (fleet.builders = builderService({
      config,
      state,
      dataDir,
      docker,
      volumes,
      networkPolicy: policy.applied,
      quotas: tenants.quotas,
      projects: tenants.projects,
      orgs: tenants.orgs,
      egress,
      fleet,
      log,
      registry: saved.forBuilders,
    }));
    stoppables.push(() => builders.close());
    const started = await startBuilds({
      config,
      state,
      log,
      metrics,
      health,
      stoppables,
      docker,
      builders,
      volumes,
      buildEndpoint,
      buildLeaf,
      publicUrl,
      audit,
      projects: tenants.projects,
      tokens: tenants.tokens,
    });
    const { builds: buildsService, drain, exporters } = started;
    [router, fleet.builds] = [started.router, buildsService];
    await router.listen(buildListen);
    health.register({
      name: "build-endpoint:listening",
      run: () => ({ status: "pass", output: `${buildEndpoint.endpoint} (server name ${buildEndpoint.serverName})` }),
    });

    // 5. HTTP.
    const metricsToken = config.metrics.bearer_token_file
      ? readFileSync(config.metrics.bearer_token_file, "utf8").trim() || null
      : null;
    let server: Server<undefined> | null = null;
    const { auth } = tenants;
    const identity: IdentityServices = { ...tenants.identity, egress, publicUrl };
    // Expired logins, sessions and tokens and old build logs: pruned now and on a timer.
    stoppables.push(
      retentionServiceFactory({
        ...tenants.retention,
        log: log.child({ component: "retention" }),
        settings: config.retention,
      }).start(),
    );
    const resetCache = (projectId: string, actor: Actor) => tenants.projects.resetCache(projectId, actor);
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
      options: {
        maxBodyBytes: s.max_body_bytes,
        hstsMaxAgeSeconds: https ? s.hsts_max_age_seconds : null,
        metricsBearerToken: metricsToken,
      },
      clientAddress,
      builds: { builds: buildsService, builders, encryption: volumes.manager.encryption, resetCache },
      ...(registry ? { registry } : {}),
      admin: adminViews({ config, docker, log, builders, pki: state.pki }),
      rpc: connectRoutes({
        ctx,
        builds: buildsService,
        resetCache: async (id, actor) => void (await resetCache(id, actor)),
        log,
        defaultPlatform: localPlatform(),
        maxUnaryBytes: CONNECT_MAX_UNARY_BYTES,
        maxMessageBytes: CONNECT_MAX_MESSAGE_BYTES,
        ...(registry ? { registry } : {}),
        imageExport: () => exporters.canPush(),
      }),
      plugins: plugins ?? [],
    });
    // Runners colocated with the appliance: enforced by serve itself (off by default).
    const localEgress = config.egress.local_agent ? await startLocalEgress(config, egress, log) : null;
    server = serveApi({ listen, maxBodyBytes: s.max_body_bytes, tls, registry, app, log });

    const localUrl = localUrlOf(https, listen.hostname, server.port!);
    let stopping: Promise<void> | null = null;
    const activeRouter = router;
    const srv = server;

    return {
      localUrl,
      publicUrl,
      port: server.port!,
      state,
      router,
      buildEndpoint,
      volumes,
      egress,
      drain: () => drain.drain(),
      interruptDrain: () => drain.interrupt(),
      buildsInFlight: () => buildsService.inFlight(config.builds.health_timeout_seconds * 1000).length,
      routes: app.routes.map((r) => ({
        method: r.method,
        path: r.path,
        takesBody: (r.hooks as { body?: unknown } | undefined)?.body !== undefined,
      })),
      stop() {
        stopping ??= stopAppliance({
          server: srv,
          router: activeRouter,
          localEgress,
          shutdownSeconds: s.shutdown_timeout_seconds,
          stoppables,
          policy: policy.applied,
          checkpointer,
          state,
          lock,
          log,
        });
        return stopping;
      },
    };
  } catch (e) {
    // A start that fails halfway leaves nothing listening, running or locked.
    await router?.stop();
    for (const stop of stoppables) stop();
    await removePolicy(policy.applied, log);
    await checkpointer?.stop();
    state.db.close();
    lock.release();
    throw e;
  }
}

type Config = LoadedConfig["config"];

async function startLocalEgress(config: Config, egress: EgressService, log: Logger) {
  const local = await startLocalEgressAgents({
    egress,
    log,
    hostsFile: config.egress.hosts_file,
    nflogGroup: config.egress.nflog_group,
    graceMs: config.egress.grace_seconds * 1000,
  });
  log.info("egress: enforcing local runner hosts", { count: local.agents.length });
  return local;
}

/** A URL that reaches the API from this machine (a wildcard listener is reached on localhost). */
function localUrlOf(https: boolean, hostname: string, port: number): string {
  const host = hostname === "0.0.0.0" || hostname === "::" ? "localhost" : hostname;
  return `${https ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** What the administrator's pages read: builder images on the engine, builders, the CA. */
function adminViews(o: {
  config: Config;
  docker: Docker;
  log: Logger;
  builders: BuilderService;
  pki: Pick<ApplianceState["pki"], "describe">;
}): NonNullable<AppDeps["admin"]> {
  const images = builderImageServiceFactory({ docker: o.docker, log: o.log });
  const b = o.config.builders;
  return {
    builders: { all: () => o.builders.all(), outdated: () => o.builders.outdated() },
    images: {
      runtime: b.runtime,
      refs: { dockerd: b.dockerd_image, buildkitd: b.buildkitd_image },
      judge: () => judgeImage(images, configuredImage(b)),
      inspect: (ref) => images.inspect(ref),
    },
    pki: o.pki,
  };
}

/** The builder service, as configured (the "builders" room's service). */
function builderService(o: {
  config: Config;
  state: ApplianceState;
  dataDir: string;
  docker: Docker;
  volumes: ConfiguredVolumes;
  networkPolicy: BuilderNetworkPolicy;
  quotas: QuotasService;
  projects: Pick<ProjectsService, "builderSettings" | "orgsOf">;
  orgs: Pick<OrgsService, "builderRuntime">;
  egress: Pick<EgressService, "setBuilderAddresses">;
  fleet: { builds: BuildsService | null };
  log: Logger;
  /** How builders reach the registry: under which names, trusting which CA; null: no registry. */
  registry: { host: string; aliases: string[]; caPem: string } | null;
}): BuilderService {
  const { config } = o;
  return builderServiceFactory({
    db: o.state.db,
    projects: o.projects,
    orgs: o.orgs,
    docker: o.docker,
    volumes: o.volumes.manager,
    applianceId: o.state.applianceId,
    dataDir: o.dataDir,
    runtime: config.builders.runtime,
    image: config.builders.runtime === "dockerd" ? config.builders.dockerd_image : config.builders.buildkitd_image,
    log: o.log.child({ component: "builders" }),
    pidsLimit: config.builders.pids_limit,
    containerdStore: config.builders.dockerd_containerd_store,
    insecureRegistries: config.builders.insecure_registries
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
    allowEmulation: config.builders.allow_emulation,
    // Off: builder networks get Docker's own bridge names and builders from any earlier serve are
    // adopted; enforced, only builders on bridges the policy filters are.
    ...(config.builders.network_policy === "enforce" ? { networkPolicy: o.networkPolicy } : {}),
    ...(o.registry ? { registry: o.registry } : {}),
    readyTimeoutMs: config.builders.ready_timeout_seconds * 1000,
    quotas: o.quotas,
    maxRunning: config.builders.max_running,
    queueTimeoutMs: config.builders.queue_timeout_seconds * 1000,
    onBuilderLost: ({ holders, reason }) => o.fleet.builds?.builderLost(holders, reason),
    // Runners may always reach builders: agents get the set within a second.
    onAddresses: (addrs) => o.egress.setBuilderAddresses(addrs),
  });
}

/** Graceful: in-flight requests finish (up to the shutdown timeout), then everything serve
 * started stops and the database is checkpointed and closed. */
async function stopAppliance(o: {
  server: Server<undefined>;
  router: BuildRouter;
  localEgress: { stop(): Promise<void> } | null;
  shutdownSeconds: number;
  stoppables: (() => void)[];
  policy: BuilderNetworkPolicy | null;
  checkpointer: Checkpointer | null;
  state: ApplianceState;
  lock: { release(): void };
  log: Logger;
}): Promise<void> {
  await o.localEgress?.stop(); // rules stay in force
  await o.router.stop();
  const graceful = o.server.stop(false);
  const timedOut = await Promise.race([
    graceful.then(() => false),
    Bun.sleep(o.shutdownSeconds * 1000).then(() => true),
  ]);
  if (timedOut) {
    o.log.warn("shutdown timeout reached; closing remaining connections", { timeout_seconds: o.shutdownSeconds });
    await o.server.stop(true);
  }
  for (const stop of o.stoppables) stop();
  await removePolicy(o.policy, o.log);
  await o.checkpointer?.stop();
  checkpointAndClose(o.state.db);
  o.lock.release();
}

/** The data dir, made ready and locked (one serve per data dir, for this process's life: a
 * second would adopt the first's builders), and its state; on failure the lock is released. */
async function claimDataDir(o: {
  config: Config;
  dataDir: string;
  env: Record<string, string | undefined>;
  log: Logger;
}) {
  prepareDataDir(o.dataDir);
  const lock = lockDataDir(o.dataDir);
  try {
    const state = await openApplianceState({
      dataDir: o.dataDir,
      busyTimeoutMs: o.config.database.busy_timeout_ms,
      maxClientCertLifetimeMs: o.config.pki.client_cert_max_lifetime_seconds * 1000,
      masterKeyFile: o.config.secrets.master_key_file,
      credentialsDirectory: o.env.CREDENTIALS_DIRECTORY,
      log: o.log,
    });
    return { lock, state };
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** Ports free and operator-named files readable: checked before anything is made. */
async function preflight(
  config: Config,
  o: { listen: ListenAddress; buildListen: ListenAddress; operatorTls: { cert: string; key: string } | null },
) {
  await checkPortsFree([
    { name: "API", flag: "--listen", addr: o.listen },
    { name: "build endpoint", flag: "--build-listen", addr: o.buildListen },
    ...(config.registry.builder_listen
      ? [
          {
            name: "builders' registry",
            flag: "registry.builder_listen",
            addr: parseListenAddress(config.registry.builder_listen)!,
          },
        ]
      : []),
  ]);
  checkReadable([
    ...(o.operatorTls
      ? [
          { key: "server.tls_cert_file", path: o.operatorTls.cert },
          { key: "server.tls_key_file", path: o.operatorTls.key },
        ]
      : []),
    ...(config.metrics.bearer_token_file
      ? [{ key: "metrics.bearer_token_file", path: config.metrics.bearer_token_file }]
      : []),
    ...(config.secrets.master_key_file
      ? [{ key: "secrets.master_key_file", path: config.secrets.master_key_file }]
      : []),
    ...(config.oidc.ca_file ? [{ key: "oidc.ca_file", path: config.oidc.ca_file }] : []),
  ]);
}

/** The API's certificate: the operator's files, or a leaf from the server intermediate (audited). */
async function serverTls(o: {
  https: boolean;
  operatorTls: { cert: string; key: string } | null;
  publicUrl: string;
  withBuilderAlias: boolean;
  state: ApplianceState;
  audit: Pick<AuditService, "record">;
  log: Logger;
}): Promise<{ tls: { cert: string; key: string } | undefined; certNotAfter: Date | null }> {
  if (o.https && o.operatorTls)
    return {
      tls: { cert: readFileSync(o.operatorTls.cert, "utf8"), key: readFileSync(o.operatorTls.key, "utf8") },
      certNotAfter: null,
    };
  if (!o.https) {
    o.log.warn(
      "serving plain HTTP (--insecure-http): credentials cross the network unencrypted; use only for local development",
    );
    return { tls: undefined, certNotAfter: null };
  }
  const names = serverNames(o.publicUrl);
  if (o.withBuilderAlias) names.dns.push(BUILDER_ALIAS);
  const leaf = await o.state.pki.issueLeaf({
    issuer: "server",
    usage: "server",
    commonName: names.dns[names.dns.length - 1] ?? "localhost",
    names,
    lifetimeMs: SERVER_CERT_LIFETIME,
    requester: "appliance:api-server",
  });
  o.audit.record({
    actor: "appliance",
    action: "certificate.issue",
    target: leaf.serial,
    details: { usage: "server", requester: "appliance:api-server", names, not_after: leaf.notAfter.toISOString() },
  });
  return { tls: { cert: leaf.chainPem, key: leaf.keyPem }, certNotAfter: leaf.notAfter };
}

/** The build endpoint's identity: the address clients dial, which may differ from where it
 * listens (NAT, TCP load balancer). Its certificate comes from the server intermediate. */
async function buildEndpointIdentity(o: {
  buildPublicAddress: string | undefined;
  publicUrl: string;
  buildListen: ListenAddress;
  state: ApplianceState;
}) {
  const buildPublic = parseListenAddress(
    o.buildPublicAddress ?? `${new URL(o.publicUrl).hostname.replace(/^\[|\]$/g, "")}:${o.buildListen.port}`,
  )!;
  const host = buildPublic.hostname.includes(":") ? `[${buildPublic.hostname}]` : buildPublic.hostname;
  const buildEndpoint: BuildEndpoint = {
    endpoint: `tcp://${host}:${buildPublic.port}`,
    serverName: buildPublic.hostname,
  };
  const buildLeaf = await o.state.pki.issueLeaf({
    issuer: "server",
    usage: "server",
    commonName: buildEndpoint.serverName,
    names: serverNames(`https://${host}`),
    lifetimeMs: SERVER_CERT_LIFETIME,
    requester: "appliance:build-endpoint",
  });
  return { buildPublic, buildEndpoint, buildLeaf };
}

/** /readyz's own checks (the database, its migrations, the API certificate's remaining days),
 * and the metrics registry with the process's own. */
function healthAndMetrics(
  state: ApplianceState,
  certNotAfter: Date | null,
): { health: HealthRegistry; metrics: MetricsRegistry } {
  const metrics = new MetricsRegistry();
  registerProcessMetrics(metrics, VERSION);
  const health = new HealthRegistry();
  health.register({
    name: "database:open",
    run: () => {
      state.db.query("SELECT 1 AS ok").get();
      return { status: "pass" };
    },
  });
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
          ? {
              status: "warn",
              observedValue: days,
              output: `API certificate expires in ${days} days; restart slipway to renew it`,
            }
          : { status: "pass", observedValue: days };
      },
    });
  }
  return { health, metrics };
}

/**
 * The services that own the tenants' tables (users, organizations, memberships, projects,
 * quotas, tokens, CI trusts, sessions, device logins, egress policies and runner hosts), each
 * given the others narrowly.
 * `fleet`: the builder service once it exists (project deletion and cache reset go to it).
 */
function tenantServicesFactory(o: {
  db: Database;
  audit: AuditService;
  config: Config;
  fleet: { builders: BuilderService | null };
  applianceHosts: string[];
}) {
  const { db, audit, config, fleet } = o;
  const egress = egressServiceFactory({
    db,
    audit,
    applianceHosts: o.applianceHosts,
    extraAllow: config.egress.extra_allow
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
  });
  const orgs = orgsServiceFactory({ db, audit });
  const tokens = tokensServiceFactory({ db, audit });
  // Quotas are checked by projects and builders, and count what those own: bound late.
  const quotas = quotasServiceFactory({
    db,
    audit,
    defaults: config.quotas,
    usage: quotaUsageOf(() => ({ projects, builders: fleet.builders ?? undefined })),
  });
  const projects = projectsServiceFactory({
    db,
    audit,
    quotas,
    orgs,
    release: async (projectId) => await fleet.builders?.releaseProject(projectId),
    resetCache: async (projectId) => {
      if (!fleet.builders) throw new UnavailableError("the builders are not running yet");
      return await fleet.builders.resetCache(projectId);
    },
  });
  const auth = authServiceFactory({ tokens, users: orgs, projects, runnerHosts: egress });
  const allowInternal = parseAllowInternal(config.oidc.allow_internal);
  const oidcCa = config.oidc.ca_file ? readFileSync(config.oidc.ca_file, "utf8") : undefined;
  const sessions = sessionsServiceFactory({ db, audit, users: orgs });
  const deviceLogins = deviceLoginServiceFactory({
    db,
    audit,
    tokens,
    tokenLifetimeMs: config.auth.device_token_days * 86400_000,
  });
  const trust = trustServiceFactory({
    db,
    audit,
    tokens,
    projects,
    allowInternal,
    verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ allowInternal, ...(oidcCa ? { ca: oidcCa } : {}) }) }),
  });
  return {
    auth,
    egress,
    orgs,
    quotas,
    projects,
    tokens,
    identity: { auth, audit, sessions, orgs, projects, quotas, tokens, trust, deviceLogins },
    /** What retention asks to prune. */
    retention: { deviceLogins, sessions, tokens, buildLogs: buildLogsFactory({ db }) },
  };
}

/**
 * The registry (saved builds) and the builders' listener for it: serves /v2/ only. The network
 * policy lets builders reach its port on this host, and not the API's. Needs HTTPS.
 */
async function startRegistry(o: {
  config: Config;
  dataDir: string;
  listen: ListenAddress;
  https: boolean;
  tls: { cert: string; key: string } | undefined;
  /** The public URL: clients name the registry by its host:port. */
  pub: URL;
  /** The registry's name for builders when they reach it through the API's port (see registry/service). */
  registryHosts: { host: string };
  caPem: () => string;
  state: ApplianceState;
  log: Logger;
  health: HealthRegistry;
  stoppables: (() => void)[];
  projects: Pick<ProjectsService, "find">;
  builds: Pick<BuildsService, "find">;
  actorOf: (request: Request) => Promise<Actor>;
}) {
  const { config, listen, log } = o;
  let registry: RegistryService | null = null;
  let builderRegistryPort: number | null = null;
  if (config.registry.enabled && o.https) {
    const srv = listenForBuilders(
      config.registry.builder_listen ? parseListenAddress(config.registry.builder_listen)! : null,
      listen.hostname,
      o.dataDir,
      o.tls!,
      () => registry,
    );
    o.stoppables.push(() => void srv.stop(true));
    builderRegistryPort = srv.port!;
  }
  const builderRegistry = builderRegistryHost(o.pub.hostname, builderRegistryPort ?? listen.port);
  if (config.registry.enabled && o.https) {
    const reg = registryServiceFactory({
      db: o.state.db,
      projects: o.projects,
      builds: o.builds,
      sealer: o.state.sealer,
      log: log.child({ component: "registry" }),
      dataDir: o.dataDir,
      settings: config.registry,
      publicHost: o.pub.port ? `${o.pub.hostname}:${o.pub.port}` : o.pub.hostname,
      builderHost: builderRegistry.host,
      actorOf: o.actorOf,
      // Builders arrive on their network's gateway: a loopback-only listener never sees them.
      unreachableByBuilders: /^(127\.|localhost$|::1$)/.test(listen.hostname)
        ? `serve listens only on loopback (server.listen = ${config.server.listen}); listen on an address builders reach, e.g. 0.0.0.0:${listen.port}`
        : null,
    });
    registry = reg;
    await reg.start();
    o.stoppables.push(() => void reg.stop());
    o.health.register(reg.healthCheck);
  } else if (config.registry.enabled) {
    log.warn(
      "the registry needs HTTPS (builders and Docker refuse plain HTTP registries with credentials): --save and depot pull are unavailable with --insecure-http",
    );
  }
  // The public host:port names the registry for builders too (the policy leads them from the
  // API's port to their listener): trusted under both names.
  const aliases = o.registryHosts.host !== builderRegistry.host ? [o.registryHosts.host] : [];
  return {
    registry,
    builderRegistryPort,
    forBuilders: registry ? { host: builderRegistry.host, aliases, caPem: o.caPem() } : null,
  };
}

/**
 * What builders may reach: applied before any builder is adopted or started; when it cannot be
 * applied serve still starts (the API, the registry for clients), and no builder starts. A
 * firewall reload (or `iptables -F`) drops the rules: re-applied within 10 s.
 */
async function applyNetworkPolicy(o: {
  config: Config;
  applianceId: string;
  registryPort: number | null;
  apiPort: number;
  log: Logger;
  health: HealthRegistry;
  stoppables: (() => void)[];
}) {
  const { config, log } = o;
  const networkPolicy = builderNetworkPolicyFactory({
    exec: hostExec(),
    names: policyNames(o.applianceId),
    settings: {
      mode: config.builders.network_policy,
      allow: config.builders.network_allow
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
      mirrors: parseEndpoints(config.builders.network_mirrors),
    },
    registryPort: o.registryPort,
    apiPort: o.apiPort,
  });
  try {
    await networkPolicy.apply();
    if (config.builders.network_policy === "enforce")
      log.info("builder network policy in force", {
        bridges: `${networkPolicy.names.bridgePrefix}+`,
        registry_port: o.registryPort,
      });
  } catch (e) {
    log.error("the builder network policy cannot be applied: no builder will start", { error: (e as Error).message });
  }
  const policyTimer = setInterval(() => {
    networkPolicy.check().then(
      (reapplied) => reapplied && log.warn("builder network policy was missing and has been re-applied"),
      (e) =>
        log.error("builder network policy re-apply failed: no builder will start", { error: (e as Error).message }),
    );
  }, 10_000);
  policyTimer.unref?.();
  o.stoppables.push(() => clearInterval(policyTimer));
  o.health.register(networkPolicyHealthCheck(networkPolicy));
  return networkPolicy;
}

/**
 * The build endpoint's router, the builds service (swept every second), the drain, and the
 * builders reconciled with what Docker runs (builds whose builder vanished fail).
 */
async function startBuilds(o: {
  config: Config;
  state: ApplianceState;
  log: Logger;
  metrics: MetricsRegistry;
  health: HealthRegistry;
  stoppables: (() => void)[];
  docker: Docker;
  builders: BuilderService;
  volumes: ConfiguredVolumes;
  buildEndpoint: BuildEndpoint;
  buildLeaf: { chainPem: string; keyPem: string };
  publicUrl: string;
  audit: AuditService;
  projects: Pick<ProjectsService, "find" | "findByRef">;
  tokens: Pick<TokensService, "issueBuildToken">;
}) {
  const { config, state, log, health, builders, docker } = o;
  let builds: BuildsService | null = null;
  const router = buildRouterFactory({
    lookup: (serial) => builds?.route(serial) ?? null,
    // BuildKit's own status for the build (the depot CLI reports only its own steps).
    observe: (target) => grpcResponseTap(STATUS_PATHS, statusObserver(target.buildId, { builds: () => builds, log })),
    tls: {
      certPem: o.buildLeaf.chainPem,
      keyPem: o.buildLeaf.keyPem,
      clientIntermediatesPem: () => state.pki.trustBundle("build-client"),
      clientRootsPem: state.pki.trustBundle("root"),
    },
    logger: log.child({ component: "build-endpoint" }),
    metrics: o.metrics,
  });
  const builderImages = builderImageServiceFactory({ docker, log });
  const configuredBuilderImage = configuredImage(config.builders);
  const exporters = exporterCheckFactory({
    runtime: config.builders.runtime,
    containerdStore: config.builders.dockerd_containerd_store,
    suiteOf: async () => (await builderImages.inspect(configuredBuilderImage.image)).suite ?? null,
  });
  const buildsService = buildsServiceFactory({
    db: state.db,
    projects: o.projects,
    tokens: o.tokens,
    pki: state.pki,
    builders,
    router: { buildEnded: (id) => router.buildEnded(id) },
    audit: o.audit,
    log: log.child({ component: "builds" }),
    publicUrl: o.publicUrl,
    buildEndpoint: o.buildEndpoint,
    healthTimeoutMs: config.builds.health_timeout_seconds * 1000,
    logMaxBytes: config.builds.log_max_bytes,
    cancelGraceMs: config.builds.cancel_grace_seconds * 1000,
    exporters,
  });
  builds = buildsService;
  const sweeper = setInterval(() => {
    try {
      buildsService.sweep();
    } catch (e) {
      log.error("build sweep failed", { error: e as Error });
    }
  }, 1000);
  o.stoppables.push(() => clearInterval(sweeper));
  const drain = drainControllerFactory({
    builds: buildsService,
    log,
    drainMs: config.server.drain_seconds * 1000,
    liveWithinMs: config.builds.health_timeout_seconds * 1000,
  });
  // A draining server is not ready: a load balancer stops sending it new work.
  health.register(drain.healthCheck);
  const engine = await dockerEngine(docker);
  if (engine.ok) {
    const r = await builders.reconcile();
    const failed = buildsService.failOrphans(r.lost);
    log.info("builders reconciled", {
      adopted: r.adopted.length,
      removed: r.removed.length,
      lost: r.lost.length,
      builds_failed: failed.length,
    });
    // Volumes second: keep open exactly what the adopted builders use.
    await o.volumes.reconcile(builders.running());
    await builders.watch();
    await exporters.refresh();
  } else {
    log.warn("the Docker engine is not reachable: builds cannot run until it is", {
      socket: config.builders.docker_socket,
      error: engine.error,
    });
  }
  health.register(builderImageHealthCheck(builderImages, configuredBuilderImage));
  health.register(builderCurrencyHealthCheck(builders));
  health.register({
    name: "builders:docker",
    run: async () => {
      const e = await dockerEngine(docker);
      return e.ok
        ? { status: "pass", output: `Docker ${e.version}; runtime ${config.builders.runtime}` }
        : { status: "warn", output: `Docker engine unreachable at ${config.builders.docker_socket}: ${e.error}` };
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
  return { router, builds: buildsService, drain, exporters };
}

/** The API's listener. Registry paths (/v2/, the token realm) bypass the app: their bodies stream, unparsed. */
function serveApi(o: {
  listen: ListenAddress;
  maxBodyBytes: number;
  tls: { cert: string; key: string } | undefined;
  registry: RegistryService | null;
  app: { handle(req: Request): Response | Promise<Response> };
  log: Logger;
}): Server<undefined> {
  const { registry, app, log } = o;
  return Bun.serve({
    hostname: o.listen.hostname,
    port: o.listen.port,
    // Above the app's own limit: the app answers oversize bodies with problem+json itself;
    // this only stops a runaway upload that ignores the 413.
    // Build status streams are long chunked uploads; the app limits each message itself.
    maxRequestBodySize: Math.max(o.maxBodyBytes * 4, 1024 * 1024 * 1024),
    tls: o.tls,
    fetch: (req, srv) => {
      allowHoldingOpen(req, () => srv.timeout(req, 0));
      // A garbage collection of a large store runs longer than Bun's 10 s idle timeout.
      if (registry && req.method === "POST" && req.url.endsWith("/api/v1/registry/gc")) srv.timeout(req, 0);
      return registry?.handle(req) ?? app.handle(req);
    },
    error: (e) => {
      log.error("unhandled server error", { error: e });
      return new Response(
        JSON.stringify({ type: "urn:slipway:problem:internal", title: "Internal error", status: 500 }),
        {
          status: 500,
          headers: { "content-type": "application/problem+json" },
        },
      );
    },
  });
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
      if (reg && (path === "/v2" || path.startsWith("/v2/")))
        return reg.handle(req) ?? new Response(null, { status: 404 });
      return new Response(null, { status: 404 });
    },
    error: () =>
      new Response(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "internal error" }] }), {
        status: 500,
        headers: { "content-type": "application/json" },
      }),
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
    throw new PreconditionError(
      `the builders' registry port ${remembered} (kept in ${file}) cannot be listened on: ${(e as Error).message}; free it, or set registry.builder_listen`,
    );
  }
  if (srv.port !== remembered) writeFileSync(file, `${srv.port}\n`, { mode: 0o600 });
  return srv;
}

async function removePolicy(policy: BuilderNetworkPolicy | null, log: Logger) {
  // Builders outlive serve, but without serve nothing reaches them (the build endpoint is serve's).
  await policy
    ?.remove()
    .catch((e) => log.warn("builder network policy removal failed", { error: (e as Error).message }));
}
