/**
 * @module agent/resolve
 * Hostname pinning: each name is resolved to all its A and AAAA records, re-resolved at half
 * its TTL (so before it runs out; at least every second, at most every 5 minutes), and every
 * address it resolved to stays in the sets for `graceMs` after it was last seen, so round-robin
 * names and answers still cached by a runner stay reachable. A failed lookup keeps the last good
 * answer.
 */
import { resolveAll, type Resolved } from "./dns.ts";

interface Entry {
  current: string[];
  seen: Map<string, number>; // address → last seen (ms)
  nextAt: number;
  ttl: number;
}

export interface PinnerOptions {
  servers: () => string[];
  graceMs: number;
  now?: () => number;
  resolve?: (name: string, servers: string[]) => Promise<Resolved>;
}

export type Pinner = ReturnType<typeof pinnerFactory>;

export function pinnerFactory({ servers, graceMs, now = Date.now, resolve = resolveAll }: PinnerOptions) {
  const entries = new Map<string, Entry>();

  async function refresh(name: string): Promise<boolean> {
    const e = entries.get(name) ?? { current: [], seen: new Map(), nextAt: 0, ttl: 0 };
    entries.set(name, e);
    try {
      const r = await resolve(name, servers());
      const t = now();
      const before = [...e.current].sort().join();
      e.current = r.addrs;
      e.ttl = r.ttl;
      for (const a of r.addrs) e.seen.set(a, t);
      e.nextAt = t + Math.min(300_000, Math.max(1000, (r.ttl * 1000) / 2));
      return before !== [...r.addrs].sort().join();
    } catch {
      e.nextAt = now() + 5000;
      return false;
    }
  }

  return {
    /** Tracks exactly `names` (others are forgotten). */
    setNames(names: string[]): void {
      for (const n of entries.keys()) if (!names.includes(n)) entries.delete(n);
      for (const n of names) if (!entries.has(n)) entries.set(n, { current: [], seen: new Map(), nextAt: 0, ttl: 0 });
    },
    /** Resolves every name that is due; true when any set of addresses changed (or expired). */
    async refreshDue(): Promise<boolean> {
      const t = now();
      let changed = false;
      await Promise.all(
        [...entries].map(async ([name, e]) => {
          if (e.nextAt <= t && (await refresh(name))) changed = true;
          for (const [a, at] of e.seen) {
            if (!e.current.includes(a) && t - at > graceMs) {
              e.seen.delete(a);
              changed = true;
            }
          }
        }),
      );
      return changed;
    },
    /** Every address the name may be reached at: current answers and those within the grace period. */
    addresses(name: string): string[] {
      return [...(entries.get(name)?.seen.keys() ?? [])];
    },
    /** The current answer: what /etc/hosts and the pinning responder give out. */
    current(name: string): string[] {
      return entries.get(name)?.current ?? [];
    },
    ttl(name: string): number {
      return entries.get(name)?.ttl ?? 0;
    },
    /** The hostname an address belongs to, for monitor reports. */
    nameOf(addr: string): string | null {
      for (const [n, e] of entries) if (e.seen.has(addr)) return n;
      return null;
    },
    /** Name → current addresses, for the hosts block. */
    pins(): Map<string, string[]> {
      const m = new Map<string, string[]>();
      for (const [n, e] of entries) if (e.current.length) m.set(n, e.current);
      return m;
    },
    /** ms until the next refresh is due. */
    nextDueIn(): number {
      let min = 60_000;
      for (const e of entries.values()) min = Math.min(min, e.nextAt - now());
      return Math.max(50, min);
    },
  };
}
