/**
 * @module appliance/runtime.test
 * Graceful stop of a real appliance (real data dir, real TLS listener): a request in flight
 * when the stop begins still completes, new connections are refused, the database is closed;
 * a request that outlives the shutdown timeout is cut off so the stop always ends.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../config/index.ts";
import { silentLogger } from "../log/logger.ts";
import { freePort } from "../../test/support/serve.ts";
import { startAppliance } from "./runtime.ts";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "slipway-rt-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function start(slowMs: number, shutdownSeconds: number) {
  const loaded = loadConfig({
    uid: 1000,
    env: { HOME: dir },
    overrides: [
      { key: "data.dir", value: join(dir, "data"), source: "test" },
      { key: "server.listen", value: `127.0.0.1:${await freePort()}`, source: "test" },
      { key: "server.build_listen", value: `127.0.0.1:${await freePort()}`, source: "test" },
      { key: "server.shutdown_timeout_seconds", value: shutdownSeconds, source: "test" },
    ],
  });
  const slow = new Elysia().get("/test/slow", async () => {
    await Bun.sleep(slowMs);
    return "done";
  });
  const app = await startAppliance({ loaded, log: silentLogger, env: {}, plugins: [slow] });
  const ca = readFileSync(app.state.caFile, "utf8");
  return { app, get: (p: string) => fetch(`${app.localUrl}${p}`, { tls: { ca }, keepalive: false }) };
}

describe("graceful stop", () => {
  test("in-flight requests finish, new connections are refused, the database is closed", async () => {
    const { app, get } = await start(600, 30);
    const inflight = get("/test/slow");
    await Bun.sleep(150);
    const t0 = performance.now();
    let stopped = 0;
    const stopping = app.stop().then(() => (stopped = performance.now()));
    await Bun.sleep(50);
    await expect(get("/livez")).rejects.toThrow();
    const r = await inflight;
    const answered = performance.now();
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("done");
    await stopping;
    expect(stopped).toBeGreaterThanOrEqual(answered - 5);
    expect(stopped - t0).toBeLessThan(5000);
    expect(() => app.state.db.query("SELECT 1").get()).toThrow();
  });

  test("the shutdown timeout bounds a stop that waits on a stuck request", async () => {
    const { app, get } = await start(20_000, 1);
    const stuck = get("/test/slow").catch((e: Error) => e);
    await Bun.sleep(150);
    const t0 = performance.now();
    await app.stop();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThan(900);
    expect(took).toBeLessThan(4000);
    expect(await stuck).toBeInstanceOf(Error);
  });
});
