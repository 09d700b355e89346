/**
 * @module agent/learned-names
 * The names the pinning responder learned under wildcard rules. Whoever runs in a container
 * chooses these names, and each one ends up in the sets and in /etc/hosts, so: only host names
 * (RFC 1123 labels: letters, digits, inner hyphens) are learned, at most `max` at a time (a
 * question beyond that is forwarded upstream like any unpinned name), and a name nobody asked
 * for within `idleMs` is forgotten, which frees its place.
 */
import { parseTarget } from "../wire/egress/targets.ts";

export interface LearnedNamesOptions {
  max: number;
  idleMs: number;
  now?: () => number;
}

export type LearnResult = "learned" | "known" | "invalid" | "full";

/** Is `name` a host name exactly as written (lower case, no trailing dot, nothing to trim)? */
export function isHostName(name: string): boolean {
  const t = parseTarget(name);
  return typeof t !== "string" && t.kind === "host" && t.name === name;
}

export function learnedNamesFactory({ max, idleMs, now = Date.now }: LearnedNamesOptions) {
  const lastAsked = new Map<string, number>();
  return {
    add(name: string): LearnResult {
      if (lastAsked.has(name)) {
        lastAsked.set(name, now());
        return "known";
      }
      if (!isHostName(name)) return "invalid";
      if (lastAsked.size >= max) return "full";
      lastAsked.set(name, now());
      return "learned";
    },
    /** A question for a learned name keeps it. */
    touch(name: string): void {
      if (lastAsked.has(name)) lastAsked.set(name, now());
    },
    has: (name: string) => lastAsked.has(name),
    /** Forgets the names idle for longer than `idleMs` and those `keep` no longer wants; true when any went. */
    prune(keep: (name: string) => boolean): boolean {
      const t = now();
      let changed = false;
      for (const [name, at] of lastAsked) {
        if (t - at > idleMs || !keep(name)) {
          lastAsked.delete(name);
          changed = true;
        }
      }
      return changed;
    },
    names: () => [...lastAsked.keys()],
    get size() {
      return lastAsked.size;
    },
  };
}
