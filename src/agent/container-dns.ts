/**
 * @module agent/container-dns
 * What the pinning DNS responder answers for container scopes: a pinned name from the pins, and
 * a name a wildcard rule covers learned first (resolved, put in the sets, then answered), so a
 * container never gets an address the sets do not hold. Learned names are applied at most once
 * per `learnIntervalMs`: names asked meanwhile share the next apply, so questions cannot drive
 * applies faster.
 */
import type { Logger } from "../log/logger.ts";
import type { AgentPolicy } from "../wire/egress/policy.ts";
import { wildcardMatches } from "../wire/egress/targets.ts";
import { pinningResponderFactory, type PinningResponder } from "./dns-responder.ts";
import type { learnedNamesFactory } from "./learned-names.ts";
import type { Pinner } from "./resolve.ts";

/** Is `name` strictly below the domain of one of the policy's `*.domain` rules? */
export function coveredByWildcard(policy: AgentPolicy | null, name: string): boolean {
  return !!policy?.rules.some((r) => r.target.startsWith("*.") && wildcardMatches(r.target.slice(2), name));
}

export interface ContainerDnsOptions {
  /** Addresses the responder listens on, `addr` or `addr#port`. */
  listen: string[];
  upstream: () => string[];
  log: Logger;
  policy: () => AgentPolicy | null;
  pinner: Pinner;
  learned: ReturnType<typeof learnedNamesFactory>;
  /** Compiles and applies with the names learned so far. */
  reconcile: (reason: string) => Promise<void>;
  learnIntervalMs: number;
  maxLearned: number;
}

export async function startContainerDns(o: ContainerDnsOptions): Promise<PinningResponder> {
  const { pinner, learned, log } = o;
  /**
   * Applies the names learned so far: at once when the last such apply is `learnIntervalMs` old,
   * else together with every name asked meanwhile.
   */
  let learnBatch: Promise<void> | null = null;
  let learnApplying: Promise<void> | null = null;
  let lastLearnApply = 0;
  function applyLearned(): Promise<void> {
    learnBatch ??= Bun.sleep(Math.max(0, lastLearnApply + o.learnIntervalMs - Date.now())).then(() => {
      learnBatch = null;
      lastLearnApply = Date.now();
      const applying = (learnApplying = o.reconcile("wildcard name").finally(() => {
        if (learnApplying === applying) learnApplying = null;
      }));
      return applying;
    });
    return learnBatch;
  }
  let warnedFullAt = 0;

  return pinningResponderFactory({
    listen: o.listen,
    upstream: o.upstream,
    log,
    pinned: (name) => {
      if (!o.policy()) return null;
      learned.touch(name);
      const addrs = pinner.current(name);
      if (addrs.length) return { addrs, ttl: Math.max(1, Math.min(pinner.ttl(name), 60)) };
      return null;
    },
    /** A name a wildcard rule covers: learn it, resolve it, put it in the sets, then answer. */
    learn: async (name) => {
      const policy = o.policy();
      if (!policy || !coveredByWildcard(policy, name)) return false;
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
        log.warn(
          "egress: too many names learned under wildcard rules; new ones are answered from upstream, not pinned",
          { max: o.maxLearned },
        );
      }
      if (r !== "learned") return false;
      await applyLearned();
      return true;
    },
  });
}
