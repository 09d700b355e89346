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

/** A request the test holds in flight: `entered` once the handler runs, answers after `release()`. */
function heldRequest() {
  let entered!: () => void;
  let release!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  const released = new Promise<void>((r) => (release = r));
  return { entered: enteredP, release, handler: async () => (entered(), await released, "done") };
}

async function start(held: ReturnType<typeof heldRequest>, shutdownSeconds: number) {
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
  const slow = new Elysia().get("/test/slow", held.handler);
  const app = await startAppliance({ loaded, log: silentLogger, env: {}, plugins: [slow] });
  const ca = readFileSync(app.state.caFile, "utf8");
  return { app, get: (p: string) => fetch(`${app.localUrl}${p}`, { tls: { ca }, keepalive: false }) };
}

/** Polls until cond holds, with a deadline far beyond any busy machine's delay. */
async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 60_000; !(await cond()); await Bun.sleep(20)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

describe("graceful stop", () => {
  test("in-flight requests finish, new connections are refused, the database is closed", async () => {
    const held = heldRequest();
    const { app, get } = await start(held, 30);
    const inflight = get("/test/slow");
    await held.entered;
    let stopped = false;
    const stopping = app.stop().then(() => (stopped = true));
    // The listener closes while the request is still held...
    await until("new connections to be refused", () =>
      get("/livez").then(
        () => false,
        () => true,
      ),
    );
    // ...and the stop waits for it: not done until the request is let go.
    expect(stopped).toBe(false);
    held.release();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("done");
    await stopping;
    expect(() => app.state.db.query("SELECT 1").get()).toThrow();
  });

  test("the shutdown timeout bounds a stop that waits on a stuck request", async () => {
    const held = heldRequest(); // never released: only the timeout can end the stop
    const { app, get } = await start(held, 1);
    const stuck = get("/test/slow").catch((e: Error) => e);
    await held.entered;
    const t0 = performance.now();
    await app.stop();
    const took = performance.now() - t0;
    console.log(`  stop with a stuck request took ${took.toFixed(0)} ms (timeout 1 s)`);
    expect(took).toBeGreaterThanOrEqual(990); // it waited for the request, as long as it was told to
    expect(await stuck).toBeInstanceOf(Error);
    held.release();
  });
});
