/**
 * @module agent/agent
 * The egress agent of one runner host: pulls its policy (long poll, so builder changes arrive at
 * once), keeps the last good one on disk for when the appliance is unreachable, resolves and pins
 * hostnames, applies sets and chain, re-asserts its jumps every `watchdogMs` (Docker or a
 * firewall manager may rewrite the tables), answers container DNS questions consistently with
 * the sets, and in monitor mode reports would-be drops read from NFLOG. Stopping the agent
 * leaves the rules in force (fail closed); only mode `off` or `uninstall` removes them.
 * This is the loop that ties the parts together: ./reconcile.ts applies, ./docker-bridges.ts
 * follows Docker, ./container-dns.ts answers containers, ./drop-reports.ts reports drops.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { writeFileAtomic } from "../fs/atomic.ts";
import type { Logger } from "../log/logger.ts";
import type { HostExec } from "../host/exec.ts";
import type { AgentPolicy } from "../wire/egress/policy.ts";
import { applierFactory } from "./apply.ts";
import { coveredByWildcard, startContainerDns } from "./container-dns.ts";
import { systemNameservers } from "./dns.ts";
import type { DockerNetworks } from "./docker.ts";
import { dockerBridgesFactory } from "./docker-bridges.ts";
import { dropReportsFactory } from "./drop-reports.ts";
import { writeHostsBlock } from "./hosts-file.ts";
import { learnedNamesFactory } from "./learned-names.ts";
import { reconcilerFactory } from "./reconcile.ts";
import { pinnerFactory } from "./resolve.ts";
import type { DropSource, PolicySource } from "./sources.ts";

export type { DropEvent, DropSource, PolicySource } from "./sources.ts";

export interface AgentOptions {
  source: PolicySource;
  exec: HostExec;
  log: Logger;
  hostsFile: string;
  /** JSON file holding the last good policy. */
  stateFile: string | null;
  instance?: string;
  nflogGroup: number;
  graceMs: number;
  /** Scopes given locally (`--scope`); replace the registered ones when non-empty. */
  scopes?: string[];
  /** DNS resolvers (default: /etc/resolv.conf's); allowed for DNS (53/udp, 53/tcp) only. */
  dnsServers?: string[];
  /** Addresses the pinning DNS responder listens on (container scopes), `addr` or `addr#port`. */
  dnsListen?: string[];
  /** The appliance's addresses this agent talks to (always allowed). */
  serverAddresses?: string[];
  /** Docker's networks and their events (docker:NAME scopes). */
  docker?: DockerNetworks;
  drops?: DropSource;
  watchdogMs?: number;
  /** Most events reported per flush (the rest are counted into the next one). */
  maxEventsPerFlush?: number;
  /** Most names learned under wildcard rules at a time (default 1000). */
  maxLearnedNames?: number;
  /** A learned name nobody asked for within this long is forgotten (default 1 h). */
  learnedIdleMs?: number;
  /** Least time between two applies for newly learned names (default 1 s); names asked meanwhile share the next one. */
  learnApplyIntervalMs?: number;
}

export type EgressAgent = Awaited<ReturnType<typeof startEgressAgent>>;

/** The last good policy saved on disk, if any and readable. */
function loadSavedPolicy(stateFile: string | null, log: Logger): AgentPolicy | null {
  if (!stateFile || !existsSync(stateFile)) return null;
  try {
    const policy = JSON.parse(readFileSync(stateFile, "utf8")) as AgentPolicy;
    log.info("egress: starting from the last good policy on disk", { etag: policy.etag, mode: policy.mode });
    return policy;
  } catch (e) {
    log.warn("egress: the saved policy is unreadable; waiting for the appliance", { error: String(e) });
    return null;
  }
}

function savePolicy(stateFile: string | null, policy: AgentPolicy): void {
  if (!stateFile) return;
  mkdirSync(dirname(stateFile), { recursive: true, mode: 0o700 });
  writeFileAtomic(stateFile, JSON.stringify(policy), 0o600);
}

export async function startEgressAgent(o: AgentOptions) {
  const log = o.log;
  const applier = applierFactory({ exec: o.exec, ...(o.instance !== undefined ? { instance: o.instance } : {}) });
  const dnsServers = () => o.dnsServers ?? systemNameservers();
  const pinner = pinnerFactory({ servers: dnsServers, graceMs: o.graceMs });
  const learned = learnedNamesFactory({ max: o.maxLearnedNames ?? 1000, idleMs: o.learnedIdleMs ?? 3_600_000 });
  const abort = new AbortController();
  let policy: AgentPolicy | null = loadSavedPolicy(o.stateFile, log);
  let stopped = false;

  const scopes = () => (o.scopes?.length ? o.scopes : (policy?.scopes ?? []));
  const resolverAddresses = () => [...new Set(dnsServers().map((s) => s.split("#")[0]!.split("%")[0]!))];
  const bridges = dockerBridgesFactory({
    docker: o.docker,
    log,
    scopes,
    active: () => !stopped && !!policy,
    onChange: () => reconcile("docker network event"),
  });
  const reconciler = reconcilerFactory({
    applier,
    pinner,
    learned,
    bridges,
    source: o.source,
    log,
    hostsFile: o.hostsFile,
    localScopes: o.scopes?.length ? o.scopes : undefined,
    serverAddresses: o.serverAddresses ?? [],
    resolverAddresses,
    nflogGroup: o.nflogGroup,
    policy: () => policy,
    stopped: () => stopped,
  });
  const reconcile = reconciler.reconcile;

  // --- the policy long poll ---
  async function pollLoop(): Promise<void> {
    let backoff = 500;
    while (!stopped) {
      try {
        const next = await o.source.fetch(policy?.etag ?? null, 25, abort.signal);
        backoff = 500;
        if (next.etag !== policy?.etag || !reconciler.compiled()) {
          policy = next;
          savePolicy(o.stateFile, next);
          await bridges.refresh();
          await reconcile("policy");
        }
      } catch (e) {
        if (stopped) return;
        log.warn("egress: the appliance is unreachable; keeping the last good policy", {
          error: String(e),
          retry_ms: backoff,
        });
        if (policy && !reconciler.compiled()) await reconcile("saved policy");
        await Bun.sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  // --- re-resolution, at each name's due time ---
  let resolveTimer: Timer | null = null;
  function scheduleResolve(): void {
    if (stopped) return;
    resolveTimer = setTimeout(
      async () => {
        if (policy) {
          if (learned.prune((name) => coveredByWildcard(policy, name))) await reconcile("learned names expired");
          if (await pinner.refreshDue()) await reconcile("dns");
          else if (policy.mode !== "off") writeHostsBlock(o.hostsFile, pinner.pins());
        }
        scheduleResolve();
      },
      Math.min(1000, pinner.nextDueIn()),
    );
  }

  // --- watchdog ---
  const watchdog = setInterval(async () => {
    if (stopped || !reconciler.compiled()) return;
    try {
      if (await bridges.refresh()) return void (await reconcile("docker network"));
      await reconciler.reassert();
    } catch (e) {
      log.warn("egress: watchdog check failed", { error: String(e) });
    }
  }, o.watchdogMs ?? 2000);

  const responder = o.dnsListen?.length
    ? await startContainerDns({
        listen: o.dnsListen,
        upstream: dnsServers,
        log,
        policy: () => policy,
        pinner,
        learned,
        reconcile,
        learnIntervalMs: o.learnApplyIntervalMs ?? 1000,
        maxLearned: o.maxLearnedNames ?? 1000,
      })
    : null;
  const drops = dropReportsFactory({
    scopes,
    bridgeOf: (n) => bridges.bridgeOf(n),
    nameOf: (a) => pinner.nameOf(a),
    report: (events) => o.source.reportEvents(events),
    log,
    maxPerFlush: o.maxEventsPerFlush ?? 200,
  });
  if (o.drops)
    await o.drops
      .start(drops.onDrop)
      .catch((e) => log.warn("egress: cannot read NFLOG; would-be drops are not reported", { error: String(e) }));

  if (policy) await reconcile("saved policy");
  const polling = pollLoop();
  scheduleResolve();

  return {
    applier,
    pinner,
    /** What is applied now (null before the first policy). */
    compiled: reconciler.compiled,
    policy: () => policy,
    /** Resolves when everything applied so far is in the kernel. */
    settled: reconciler.settled,
    /** Stops the agent; the rules stay in force (fail closed). */
    async stop(): Promise<void> {
      stopped = true;
      abort.abort();
      clearInterval(watchdog);
      drops.stop();
      bridges.stop();
      if (resolveTimer) clearTimeout(resolveTimer);
      o.drops?.stop();
      responder?.stop();
      await polling.catch(() => {});
      await reconciler.settled().catch(() => {});
    },
  };
}

/** `slipway agent uninstall`: removes exactly what the agent added. */
export async function uninstallEgress(o: {
  exec: HostExec;
  hostsFile: string;
  stateFile: string | null;
  instance?: string;
}): Promise<void> {
  await applierFactory({ exec: o.exec, ...(o.instance !== undefined ? { instance: o.instance } : {}) }).remove();
  writeHostsBlock(o.hostsFile, new Map());
  if (o.stateFile && existsSync(o.stateFile)) rmSync(o.stateFile);
}
