/**
 * @module appliance/drain.test
 * The drain's timing and signals, with a narrow fake of the builds service (the real one, real
 * builders and the depot CLI are in test/e2e/drain.test.ts); and the systemd unit's stop timeout,
 * which must outlast a default drain.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { configSchema } from "../config/schema.ts";
import { silentLogger } from "../log/logger.ts";
import { drainControllerFactory, FINAL_WORD_MS, REFUSAL } from "./drain.ts";

function fakeBuilds(inFlight: string[]) {
  const calls: string[] = [];
  let untold: string[] = [];
  return {
    calls,
    inFlightNow: inFlight,
    tell: (id: string) => (untold = untold.filter((x) => x !== id)),
    builds: {
      stopAdmitting: (m: string) => void calls.push(`stopAdmitting:${m}`),
      inFlight: () => inFlight,
      cancelForShutdown: (reason: string) => {
        calls.push(`cancel:${reason}`);
        untold = [...inFlight];
        const ids = [...inFlight];
        inFlight.length = 0;
        return ids;
      },
      untoldShutdownCancels: () => untold,
    },
  };
}

describe("drain", () => {
  test("nothing running: admission stops, readiness fails, the drain ends at once", async () => {
    const f = fakeBuilds([]);
    const d = drainControllerFactory({ builds: f.builds, log: silentLogger, drainMs: 60_000, liveWithinMs: 60_000 });
    expect(await d.healthCheck.run()).toMatchObject({ status: "pass" });
    const r = await d.drain();
    expect(r).toMatchObject({ ended: "empty", waitedFor: 0, canceled: [] });
    expect(r.tookMs).toBeLessThan(30_000); // not the 60 s drain time ("empty" above says why it ended)
    expect(f.calls[0]).toBe(`stopAdmitting:${REFUSAL}`);
    expect(await d.healthCheck.run()).toMatchObject({ status: "fail", output: expect.stringContaining("draining") });
    expect(d.drain()).toBe(d.drain()); // once
  });

  test("builds that finish in time end the drain when the last one does", async () => {
    const f = fakeBuilds(["bld_1"]);
    const d = drainControllerFactory({
      builds: f.builds,
      log: silentLogger,
      drainMs: 60_000,
      liveWithinMs: 60_000,
      pollMs: 20,
    });
    setTimeout(() => (f.inFlightNow.length = 0), 300);
    const r = await d.drain();
    expect(r).toMatchObject({ ended: "empty", waitedFor: 1, canceled: [] });
    expect(r.tookMs).toBeGreaterThanOrEqual(280);
    expect(r.tookMs).toBeLessThan(30_000); // not the 60 s drain time
  });

  test("out of drain time: the rest are canceled with the reason, and their clients get a moment to hear it", async () => {
    const f = fakeBuilds(["bld_1", "bld_2"]);
    const d = drainControllerFactory({
      builds: f.builds,
      log: silentLogger,
      drainMs: 1000,
      liveWithinMs: 60_000,
      pollMs: 20,
      finalWordMs: 60_000,
    });
    setTimeout(() => f.tell("bld_1"), 1200);
    setTimeout(() => f.tell("bld_2"), 1400);
    const r = await d.drain();
    expect(r.ended).toBe("timeout");
    expect(r.canceled).toEqual(["bld_1", "bld_2"]);
    expect(f.calls[1]).toBe(
      "cancel:slipway is shutting down: this build did not finish within its drain time (1 s); run the build again",
    );
    expect(r.tookMs).toBeGreaterThanOrEqual(1380); // waited for both clients...
    expect(r.tookMs).toBeLessThan(30_000); // ...and not the 60 s final word
  });

  test("a client that never calls back is not waited for beyond the final word", async () => {
    const f = fakeBuilds(["bld_1"]);
    const d = drainControllerFactory({
      builds: f.builds,
      log: silentLogger,
      drainMs: 100,
      liveWithinMs: 60_000,
      pollMs: 20,
      finalWordMs: 400,
    });
    const r = await d.drain();
    expect(r.tookMs).toBeGreaterThanOrEqual(480);
    expect(r.tookMs).toBeLessThan(30_000); // ended by the final word, never by the client
  });

  test("a second signal ends the drain at once, with its own reason; a third skips the final word", async () => {
    const f = fakeBuilds(["bld_1"]);
    const d = drainControllerFactory({
      builds: f.builds,
      log: silentLogger,
      drainMs: 600_000,
      liveWithinMs: 60_000,
      finalWordMs: 60_000,
    });
    const t0 = Date.now();
    const running = d.drain();
    setTimeout(() => d.interrupt(), 100);
    setTimeout(() => d.interrupt(), 400);
    const r = await running;
    expect(r.ended).toBe("interrupted");
    expect(f.calls[1]).toBe(
      "cancel:slipway is shutting down: its drain was ended early (a second stop signal) before this build finished; run the build again",
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380); // the final word lasted until the third signal
    expect(Date.now() - t0).toBeLessThan(30_000); // not the 60 s final word
  });
});

describe("the systemd unit", () => {
  const unit = readFileSync(join(import.meta.dir, "..", "..", "packaging", "systemd", "slipway.service"), "utf8");
  const setting = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(unit)?.[1];

  test("its stop timeout outlasts a default drain, the final word and the shutdown timeout", () => {
    const server = configSchema.parse({}).server;
    const needed = server.drain_seconds + FINAL_WORD_MS / 1000 + server.shutdown_timeout_seconds;
    expect(Number(setting("TimeoutStopSec"))).toBeGreaterThanOrEqual(needed + 30);
  });

  test("SIGTERM goes to serve alone (its host commands are not killed mid-drain); SIGKILL only after the timeout", () => {
    expect(setting("KillSignal")).toBe("SIGTERM");
    expect(setting("KillMode")).toBe("mixed");
    expect(setting("SendSIGKILL") ?? "yes").toBe("yes");
  });
});
