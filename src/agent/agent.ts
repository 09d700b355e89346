/**
 * @module agent/agent
 * The egress agent of one runner host: pulls its policy (long poll, so builder changes arrive at
 * once), keeps the last good one on disk for when the appliance is unreachable, resolves and pins
 * hostnames, applies sets and chain, re-asserts its jumps every `watchdogMs` (Docker or a
 * firewall manager may rewrite the tables), answers container DNS questions consistently with
 * the sets, and in monitor mode reports would-be drops read from NFLOG. Stopping the agent
 * leaves the rules in force (fail closed); only mode `off` or `uninstall` removes them.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { writeFileAtomic } from "../fs/atomic.ts";
import type { Logger } from "../log/logger.ts";
import type { HostExec } from "../host/exec.ts";
import { applierFactory } from "./apply.ts";
import { compile, hostnamesOf } from "./compile.ts";
import { systemNameservers } from "./dns.ts";
import { pinningResponderFactory, type PinningResponder } from "./dns-responder.ts";
import type { DockerNetworks } from "./docker.ts";
import { writeHostsBlock } from "./hosts-file.ts";
import { learnedNamesFactory } from "./learned-names.ts";
import type { Compiled } from "./render.ts";
import { pinnerFactory } from "./resolve.ts";
import { parseScope } from "../wire/egress/scopes.ts";
import type { AgentPolicy, EventReport, StatusReport } from "../wire/egress/policy.ts";
import { cidrContains, familyOf, wildcardMatches } from "../wire/egress/targets.ts";

/** Where the agent's policy comes from (the appliance's API, or in-process for `serve`). */
export interface PolicySource {
  /** The policy once it differs from `etag` (or after `waitSeconds`); throws when unreachable. */
  fetch(etag: string | null, waitSeconds: number, signal: AbortSignal): Promise<AgentPolicy>;
  reportStatus(s: StatusReport): Promise<void>;
  reportEvents(events: EventReport[]): Promise<void>;
}

/** A dropped (or, in monitor mode, would-be dropped) packet, as NFLOG saw it. */
export interface DropEvent {
  src: string;
  dst: string;
  port: number;
  protocol: string;
  uid: number | null;
  indev: string | null;
  /** Logged by monitor mode (would have been dropped) rather than dropped. */
  monitor: boolean;
}

export interface DropSource {
  start(onEvent: (e: DropEvent) => void): Promise<void>;
  stop(): void;
}

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

export async function startEgressAgent(o: AgentOptions) {
  const applier = applierFactory({ exec: o.exec, ...(o.instance !== undefined ? { instance: o.instance } : {}) });
  const dnsServers = () => o.dnsServers ?? systemNameservers();
  const pinner = pinnerFactory({ servers: dnsServers, graceMs: o.graceMs });
  const learned = learnedNamesFactory({ max: o.maxLearnedNames ?? 1000, idleMs: o.learnedIdleMs ?? 3_600_000 });
  const learnInterval = o.learnApplyIntervalMs ?? 1000;
  const bridges = new Map<string, string | null>();
  let knownBridges: string[] = [];
  let stopDockerWatch: (() => void) | null = null;
  const abort = new AbortController();
  let policy: AgentPolicy | null = null;
  let compiled: Compiled | null = null;
  let appliedKey = "";
  let stopped = false;
  let applying: Promise<void> = Promise.resolve();
  const log = o.log;

  if (o.stateFile && existsSync(o.stateFile)) {
    try {
      policy = JSON.parse(readFileSync(o.stateFile, "utf8")) as AgentPolicy;
      log.info("egress: starting from the last good policy on disk", { etag: policy.etag, mode: policy.mode });
    } catch (e) {
      log.warn("egress: the saved policy is unreadable; waiting for the appliance", { error: String(e) });
    }
  }

  const scopes = () => (o.scopes && o.scopes.length ? o.scopes : (policy?.scopes ?? []));
  const resolverAddresses = () => [...new Set(dnsServers().map((s) => s.split("#")[0]!.split("%")[0]!))];

  /** Looks up the bridges of docker:NAME scopes and of every other network (any bridge not
   * among them is new, and filtered until looked up); true when something changed. */
  async function refreshBridges(): Promise<boolean> {
    if (!o.docker) return false;
    const named = scopes().map(parseScope).filter((s) => typeof s !== "string" && s.kind === "docker" && s.network !== "*") as { network: string }[];
    if (named.length === 0) return false;
    if (!stopDockerWatch) {
      let warned = false;
      stopDockerWatch = o.docker.watch(
        () => void onDockerEvent(),
        (e) => (warned ? undefined : ((warned = true), log.warn("egress: cannot follow Docker's network events; polling only", { error: String(e) }))),
      );
    }
    let list: Map<string, string>;
    try {
      list = await o.docker.list();
    } catch (e) {
      log.warn("egress: cannot list Docker's networks; keeping what is applied", { error: String(e) });
      return false;
    }
    let changed = false;
    for (const { network } of named) {
      const b = list.get(network) ?? null;
      if (bridges.get(network) !== b) changed = true;
      bridges.set(network, b);
    }
    const known = [...new Set(list.values())].sort();
    if (known.join() !== knownBridges.join()) changed = true;
    knownBridges = known;
    return changed;
  }

  /** A Docker network event: look the bridges up again and re-apply when they changed. */
  let dockerPending: Promise<void> | null = null;
  let dockerAgain = false;
  function onDockerEvent(): Promise<void> {
    if (dockerPending) {
      dockerAgain = true; // events come in bursts: one more look after the current one
      return dockerPending;
    }
    dockerPending = (async () => {
      do {
        dockerAgain = false;
        if (stopped || !policy) break;
        if (await refreshBridges()) await reconcile("docker network event");
      } while (dockerAgain);
    })().finally(() => (dockerPending = null));
    return dockerPending;
  }

  /** Compiles and applies the current state; serialized, and skipped when nothing changed. */
  function reconcile(reason: string, force = false): Promise<void> {
    applying = applying.then(async () => {
      if (!policy || stopped) return;
      const p = policy;
      pinner.setNames(hostnamesOf(p, learned.names()));
      await pinner.refreshDue();
      const c = compile(
        p,
        {
          addressesOf: (n) => pinner.addresses(n),
          learnedNames: learned.names(),
          bridgeOf: (n) => bridges.get(n) ?? null,
          knownBridges,
          alwaysAllow: o.serverAddresses ?? [],
          dnsServers: resolverAddresses(),
          nflogGroup: o.nflogGroup,
        },
        o.scopes && o.scopes.length ? o.scopes : undefined,
      );
      const key = JSON.stringify(c);
      if (!force && key === appliedKey) {
        if (compiled) writeHostsBlock(o.hostsFile, p.mode === "off" ? new Map() : pinner.pins());
        return;
      }
      try {
        await applier.apply(c);
        writeHostsBlock(o.hostsFile, p.mode === "off" ? new Map() : pinner.pins());
        compiled = c;
        appliedKey = key;
        log.info("egress: applied", { reason, etag: p.etag, mode: p.mode, default: p.default_action, rules: p.rules.length });
        await o.source.reportStatus({ etag: p.etag, ok: true, dns_resolvers: resolverAddresses() }).catch(() => {});
      } catch (e) {
        log.error("egress: apply failed", { reason, error: String(e) });
        await o.source.reportStatus({ etag: p.etag, ok: false, error: String(e).slice(0, 4000) }).catch(() => {});
      }
    });
    return applying;
  }

  // --- the policy long poll ---
  async function pollLoop(): Promise<void> {
    let backoff = 500;
    while (!stopped) {
      try {
        const next = await o.source.fetch(policy?.etag ?? null, 25, abort.signal);
        backoff = 500;
        if (next.etag !== policy?.etag || !compiled) {
          policy = next;
          if (o.stateFile) {
            mkdirSync(dirname(o.stateFile), { recursive: true, mode: 0o700 });
            writeFileAtomic(o.stateFile, JSON.stringify(next), 0o600);
          }
          await refreshBridges();
          await reconcile("policy");
        }
      } catch (e) {
        if (stopped) return;
        log.warn("egress: the appliance is unreachable; keeping the last good policy", { error: String(e), retry_ms: backoff });
        if (policy && !compiled) await reconcile("saved policy");
        await Bun.sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  // --- re-resolution, at each name's due time ---
  let resolveTimer: Timer | null = null;
  function scheduleResolve(): void {
    if (stopped) return;
    resolveTimer = setTimeout(async () => {
      if (policy) {
        if (learned.prune(coveredByWildcard)) await reconcile("learned names expired");
        if (await pinner.refreshDue()) await reconcile("dns");
        else if (policy.mode !== "off") writeHostsBlock(o.hostsFile, pinner.pins());
      }
      scheduleResolve();
    }, Math.min(1000, pinner.nextDueIn()));
  }

  // --- watchdog ---
  const watchdog = setInterval(async () => {
    if (stopped || !compiled) return;
    try {
      if (await refreshBridges()) return void (await reconcile("docker network"));
      await (applying = applying.then(async () => {
        // What is applied when the check runs, not when it was queued: an apply queued before it
        // (a Docker event) would otherwise be undone with the previous jumps.
        const c = compiled;
        if (c && !stopped && (await applier.check(c))) log.warn("egress: re-asserted the rules (something rewrote the tables)");
      }));
    } catch (e) {
      log.warn("egress: watchdog check failed", { error: String(e) });
    }
  }, o.watchdogMs ?? 2000);

  // --- container DNS ---
  function coveredByWildcard(name: string): boolean {
    return !!policy?.rules.some((r) => r.target.startsWith("*.") && wildcardMatches(r.target.slice(2), name));
  }

  /**
   * Applies the names learned so far: at once when the last such apply is `learnInterval` old,
   * else together with every name asked meanwhile, so questions cannot drive applies faster.
   */
  let learnBatch: Promise<void> | null = null;
  let learnApplying: Promise<void> | null = null;
  let lastLearnApply = 0;
  function applyLearned(): Promise<void> {
    learnBatch ??= Bun.sleep(Math.max(0, lastLearnApply + learnInterval - Date.now())).then(() => {
      learnBatch = null;
      lastLearnApply = Date.now();
      const applying = (learnApplying = reconcile("wildcard name").finally(() => {
        if (learnApplying === applying) learnApplying = null;
      }));
      return applying;
    });
    return learnBatch;
  }
  let warnedFullAt = 0;

  let responder: PinningResponder | null = null;
  if (o.dnsListen?.length) {
    responder = await pinningResponderFactory({
      listen: o.dnsListen,
      upstream: dnsServers,
      log,
      pinned: (name) => {
        if (!policy) return null;
        learned.touch(name);
        const addrs = pinner.current(name);
        if (addrs.length) return { addrs, ttl: Math.max(1, Math.min(pinner.ttl(name), 60)) };
        return null;
      },
      /** A name a wildcard rule covers: learn it, resolve it, put it in the sets, then answer. */
      learn: async (name) => {
        if (!policy || !coveredByWildcard(name)) return false;
        if (learned.has(name)) {
          // Learned but not resolved yet: wait for the apply under way rather than answer unpinned.
          learned.touch(name);
          const underWay = learnBatch ?? learnApplying;
          if (!underWay) return false;
          await underWay;
          return true;
        }
        const r = learned.add(name);
        if (r === "full" && Date.now() - warnedFullAt > 60_000) {
          warnedFullAt = Date.now();
          log.warn("egress: too many names learned under wildcard rules; new ones are answered from upstream, not pinned", { max: o.maxLearnedNames ?? 1000 });
        }
        if (r !== "learned") return false;
        await applyLearned();
        return true;
      },
    });
  }

  // --- monitor events: deduplicated per (scope, source, destination), flushed once a second ---
  const pending = new Map<string, EventReport>();
  const keyOf = (e: Pick<EventReport, "action" | "scope" | "source" | "dst" | "port" | "protocol">) => `${e.action}|${e.scope}|${e.source}|${e.dst}|${e.port}|${e.protocol}`;
  /** The scope a drop belongs to; null when it is in none of this agent's (not reported). */
  function scopeOf(e: DropEvent): { scope: string; source: string } | null {
    for (const raw of scopes()) {
      const s = parseScope(raw);
      if (typeof s === "string") continue;
      if (e.indev) {
        if (s.kind === "bridge" && (s.iface.endsWith("+") ? e.indev.startsWith(s.iface.slice(0, -1)) : e.indev === s.iface)) return { scope: raw, source: e.src };
        if (s.kind === "docker" && (s.network === "*" ? e.indev.startsWith("br-") : bridges.get(s.network) === e.indev)) return { scope: raw, source: e.src };
        if (s.kind === "subnet" && cidrContains(s.cidr, e.src)) return { scope: raw, source: e.src };
      } else if (s.kind === "uid" && e.uid === s.uid) return { scope: raw, source: `uid:${s.uid}` };
    }
    if (!scopes().includes("host")) return null;
    return { scope: "host", source: e.uid !== null ? `uid:${e.uid}` : e.src };
  }
  const onDrop = (e: DropEvent) => {
    if (!familyOf(e.dst)) return;
    const of = scopeOf(e);
    if (!of) return;
    const { scope, source } = of;
    const action = e.monitor ? "would-block" : "blocked";
    const key = keyOf({ action, scope, source, dst: e.dst, port: e.port, protocol: e.protocol });
    const cur = pending.get(key);
    if (cur) cur.count++;
    else pending.set(key, { action, scope, source, dst: e.dst, port: e.port, protocol: e.protocol, hostname: pinner.nameOf(e.dst), count: 1, at: new Date().toISOString() });
  };
  const flusher = setInterval(async () => {
    if (pending.size === 0) return;
    const batch: EventReport[] = [];
    for (const [k, ev] of pending) {
      if (batch.length >= (o.maxEventsPerFlush ?? 200)) break;
      batch.push(ev);
      pending.delete(k);
    }
    await o.source.reportEvents(batch).catch((e) => {
      log.warn("egress: could not report events; keeping them for the next try", { error: String(e) });
      for (const ev of batch) {
        const k = keyOf(ev);
        const cur = pending.get(k);
        if (cur) cur.count += ev.count;
        else pending.set(k, ev);
      }
    });
  }, 1000);
  if (o.drops) await o.drops.start(onDrop).catch((e) => log.warn("egress: cannot read NFLOG; would-be drops are not reported", { error: String(e) }));

  if (policy) await reconcile("saved policy");
  const polling = pollLoop();
  scheduleResolve();

  return {
    applier,
    pinner,
    /** What is applied now (null before the first policy). */
    compiled: () => compiled,
    policy: () => policy,
    /** Resolves when everything applied so far is in the kernel. */
    settled: () => applying,
    /** Stops the agent; the rules stay in force (fail closed). */
    async stop(): Promise<void> {
      stopped = true;
      abort.abort();
      clearInterval(watchdog);
      clearInterval(flusher);
      stopDockerWatch?.();
      if (resolveTimer) clearTimeout(resolveTimer);
      o.drops?.stop();
      responder?.stop();
      await polling.catch(() => {});
      await applying.catch(() => {});
    },
  };
}

/** `slipway agent uninstall`: removes exactly what the agent added. */
export async function uninstallEgress(o: { exec: HostExec; hostsFile: string; stateFile: string | null; instance?: string }): Promise<void> {
  await applierFactory({ exec: o.exec, ...(o.instance !== undefined ? { instance: o.instance } : {}) }).remove();
  writeHostsBlock(o.hostsFile, new Map());
  if (o.stateFile && existsSync(o.stateFile)) rmSync(o.stateFile);
}
