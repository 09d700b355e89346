/**
 * @module appliance/drain
 * The first part of stopping `serve`: admit no new builds, let the running ones finish up to the
 * drain time, then end what is left as canceled with a reason, and give those clients a moment to
 * call FinishBuild, whose answer carries the reason (the depot CLI prints it). A second signal
 * ends the wait for builds at once; a third also skips the moment for the clients.
 */
import type { BuildsService } from "../builds/index.ts";
import type { HealthCheck } from "../health/registry.ts";
import type { Logger } from "../log/logger.ts";

/** How long canceled builds' clients get to call FinishBuild and learn why. */
export const FINAL_WORD_MS = 5_000;

export const REFUSAL =
  "slipway is shutting down: it admits no new builds while the running ones finish; retry once it is back (or on another appliance)";

export interface DrainDeps {
  builds: Pick<BuildsService, "stopAdmitting" | "inFlight" | "cancelForShutdown" | "untoldShutdownCancels">;
  log: Pick<Logger, "info" | "warn">;
  /** How long running builds may take to finish (server.drain_seconds). */
  drainMs: number;
  /** A build whose client was not heard from for this long is not waited for (builds.health_timeout_seconds). */
  liveWithinMs: number;
  finalWordMs?: number;
  pollMs?: number;
}

export interface DrainResult {
  /** Builds that were in flight when the drain began. */
  waitedFor: number;
  /** Builds ended as canceled when the drain ended. */
  canceled: string[];
  /** Why the drain ended: nothing left, the drain time ran out, or a second signal. */
  ended: "empty" | "timeout" | "interrupted";
  tookMs: number;
}

export type DrainController = ReturnType<typeof drainControllerFactory>;

export function drainControllerFactory(deps: DrainDeps) {
  const finalWordMs = deps.finalWordMs ?? FINAL_WORD_MS;
  const pollMs = deps.pollMs ?? 250;
  let startedAt: number | null = null;
  let interrupts = 0;
  const wakers = new Set<() => void>();
  let running: Promise<DrainResult> | null = null;

  /** Waits until `done()` or `ms` pass or a signal beyond `interruptsBefore` arrives. */
  async function waitUntil(
    done: () => boolean,
    ms: number,
    interruptsBefore: number,
  ): Promise<"done" | "timeout" | "interrupted"> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (interrupts > interruptsBefore) return "interrupted";
      if (done()) return "done";
      const left = deadline - Date.now();
      if (left <= 0) return "timeout";
      let wake = () => {};
      const woken = new Promise<void>((r) => (wake = r));
      wakers.add(wake);
      await Promise.race([Bun.sleep(Math.min(pollMs, left)), woken]);
      wakers.delete(wake);
    }
  }

  const healthCheck: HealthCheck = {
    name: "serve:draining",
    run: () => {
      if (startedAt === null) return { status: "pass", output: "admitting builds" };
      const left = Math.max(0, Math.ceil((startedAt + deps.drainMs - Date.now()) / 1000));
      return {
        status: "fail",
        observedValue: deps.builds.inFlight(deps.liveWithinMs).length,
        output: `draining: shutting down, admitting no new builds; running builds have ${left} s left to finish`,
      };
    },
  };

  return {
    healthCheck,
    get draining(): boolean {
      return startedAt !== null;
    },

    /** Runs the drain once (later calls get the same promise). */
    drain(): Promise<DrainResult> {
      running ??= (async () => {
        const t0 = Date.now();
        startedAt = t0;
        deps.builds.stopAdmitting(REFUSAL);
        const live = () => deps.builds.inFlight(deps.liveWithinMs);
        const waitedFor = live().length;
        deps.log.info("draining: no new builds; waiting for running ones", {
          builds: waitedFor,
          drain_seconds: deps.drainMs / 1000,
        });
        const outcome = await waitUntil(() => live().length === 0, deps.drainMs, 0);
        const ended = outcome === "done" ? "empty" : outcome;
        const reason =
          ended === "interrupted"
            ? "slipway is shutting down: its drain was ended early (a second stop signal) before this build finished; run the build again"
            : `slipway is shutting down: this build did not finish within its drain time (${Math.round(deps.drainMs / 1000)} s); run the build again`;
        // Also what was never heard from again: nothing is left active behind a stopped server.
        // Only clients that are alive will call FinishBuild to hear why.
        const listening = new Set(live());
        const canceled = deps.builds.cancelForShutdown(reason);
        if (canceled.length > 0) {
          deps.log.warn("drain: builds canceled", { builds: canceled, reason: ended });
          const untold = () => deps.builds.untoldShutdownCancels().filter((id) => listening.has(id));
          await waitUntil(() => untold().length === 0, finalWordMs, Math.max(1, interrupts));
        }
        const tookMs = Date.now() - t0;
        deps.log.info("drain ended", { ended, waited_for: waitedFor, canceled: canceled.length, took_ms: tookMs });
        return { waitedFor, canceled, ended, tookMs };
      })();
      return running;
    },

    /** Another stop signal: the first ends the wait for builds, the next the wait for their clients. */
    interrupt(): void {
      interrupts++;
      for (const wake of wakers) wake();
    },
  };
}
