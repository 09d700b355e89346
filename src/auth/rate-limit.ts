/**
 * @module auth/rate-limit
 * Fixed-window counters against brute force (password login, OIDC exchange), kept in memory:
 * an appliance is one process, and a restart forgetting the counts costs an attacker a restart.
 */
import { SlipwayError } from "../errors.ts";

export class RateLimitedError extends SlipwayError {
  override name = "RateLimitedError";
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

export interface RateLimiter {
  /** Counts one attempt for every key; throws RateLimitedError when any key is over its limit. */
  hit(keys: string[]): void;
}

export function rateLimiterFactory({
  limit,
  windowMs,
  now = () => Date.now(),
  maxKeys = 100_000,
}: {
  limit: number;
  windowMs: number;
  now?: () => number;
  maxKeys?: number;
}): RateLimiter {
  const windows = new Map<string, { start: number; count: number }>();
  return {
    hit(keys) {
      const t = now();
      if (windows.size > maxKeys) {
        for (const [k, w] of windows) if (t - w.start >= windowMs) windows.delete(k);
      }
      let worst = 0;
      for (const key of keys) {
        let w = windows.get(key);
        if (!w || t - w.start >= windowMs) windows.set(key, (w = { start: t, count: 0 }));
        w.count++;
        if (w.count > limit) worst = Math.max(worst, Math.ceil((w.start + windowMs - t) / 1000));
      }
      if (worst > 0) throw new RateLimitedError(`too many attempts; try again in ${worst} s`, worst);
    },
  };
}
