/**
 * @module retention/service
 * Prunes what stopped being usable and only grows: device logins, web sessions and API tokens
 * (also the per-build tokens) some days after they expired or were revoked, and build logs some
 * days after their build ended (the build and its steps stay). Deletes go in batches, and the
 * event loop is yielded between full batches, so a large backlog (bun:sqlite is synchronous)
 * neither holds the write lock nor stalls requests for long. The audit log is never pruned. Each
 * table's owner deletes its own rows; this service decides when and how much.
 */
import type { DeviceLoginService } from "../auth/device-login.ts";
import type { SessionsService } from "../auth/sessions.ts";
import type { TokensService } from "../auth/api-tokens.ts";
import type { BuildLogs } from "../builds/index.ts";
import type { Logger } from "../log/logger.ts";

export interface RetentionSettings {
  /** Days kept after it stopped being usable; 0 keeps it for ever. */
  device_logins_days: number;
  sessions_days: number;
  tokens_days: number;
  build_logs_days: number;
  interval_minutes: number;
}

export interface Pruned {
  device_logins: number;
  sessions: number;
  tokens: number;
  build_logs: number;
}

const BATCH = 5000;
const DAY_MS = 86400_000;

export type RetentionService = ReturnType<typeof retentionServiceFactory>;

export interface RetentionDeps {
  deviceLogins: Pick<DeviceLoginService, "pruneExpired">;
  sessions: Pick<SessionsService, "pruneEnded">;
  tokens: Pick<TokensService, "pruneEnded">;
  buildLogs: Pick<BuildLogs, "pruneOfEnded">;
  log: Pick<Logger, "info" | "error">;
  settings: RetentionSettings;
  now?: () => Date;
}

export function retentionServiceFactory({
  deviceLogins,
  sessions,
  tokens,
  buildLogs,
  log,
  settings,
  now = () => new Date(),
}: RetentionDeps) {
  // Each owner deletes at most `limit` rows older than `cutoff`; run until none are left.
  const pruners: Record<keyof Pruned, (cutoff: Date, limit: number) => number> = {
    device_logins: (cutoff, limit) => deviceLogins.pruneExpired(cutoff, limit),
    sessions: (cutoff, limit) => sessions.pruneEnded(cutoff, limit),
    tokens: (cutoff, limit) => tokens.pruneEnded(cutoff, limit),
    build_logs: (cutoff, limit) => buildLogs.pruneOfEnded(cutoff, limit),
  };
  const days: Record<keyof Pruned, number> = {
    device_logins: settings.device_logins_days,
    sessions: settings.sessions_days,
    tokens: settings.tokens_days,
    build_logs: settings.build_logs_days,
  };

  /** One pass over every kind; returns how many rows went. */
  async function prune(): Promise<Pruned> {
    const t = now().getTime();
    const pruned: Pruned = { device_logins: 0, sessions: 0, tokens: 0, build_logs: 0 };
    for (const kind of Object.keys(pruners) as (keyof Pruned)[]) {
      if (days[kind] === 0) continue;
      const cutoff = new Date(t - days[kind] * DAY_MS);
      for (;;) {
        const n = pruners[kind](cutoff, BATCH);
        pruned[kind] += n;
        if (n < BATCH) break;
        await new Promise((resolve) => setImmediate(resolve)); // let requests in between batches
      }
    }
    // (Not "tokens": the logger redacts any field whose name ends like a secret's.)
    const { tokens: api_token_rows, ...rest } = pruned;
    if (Object.values(pruned).some((n) => n > 0)) log.info("retention: pruned", { ...rest, api_token_rows });
    return pruned;
  }

  return {
    prune,

    /** Prunes now and every interval_minutes; returns the stop function. */
    start(): () => void {
      let running = false;
      const run = async () => {
        if (running) return; // a slow pass is not overlapped by the next tick
        running = true;
        try {
          await prune();
        } catch (e) {
          log.error("retention: prune failed", { error: e as Error });
        } finally {
          running = false;
        }
      };
      void run();
      const timer = setInterval(run, settings.interval_minutes * 60_000);
      timer.unref?.();
      return () => clearInterval(timer);
    },
  };
}
