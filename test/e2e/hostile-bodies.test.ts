/**
 * @module test/e2e/hostile-bodies
 * Memory exhaustion before authentication, on the compiled binary: four concurrent anonymous
 * 16 MiB bodies of empty nested messages (`12 00` repeated) on every Connect method of the
 * depot wire contract. Each is answered without being decoded — 401 (unauthenticated) or, for
 * the anonymous-by-design login calls, 429 (resource_exhausted: over the size cap); a stream's
 * answer is the same code in its end frame — and serve's resident memory grows by under 100 MB.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { METHODS } from "../../src/wire/depot.ts";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { hostileCall, rssMb } from "../support/hostile.ts";
import { serve, type Served } from "../support/serve.ts";

let work: string;
let server: Served;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "slipway-hostile-"));
  server = await serve(slipwayBinary(), join(work, "data"));
});

afterAll(async () => {
  if (server?.proc.exitCode === null) await server.stop();
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});

test("four concurrent unauthenticated 16 MiB bodies on every Connect method: 401 or 429 without decoding, RSS grows by under 100 MB", async () => {
  const pid = server.proc.pid;
  const before = rssMb(pid);
  const answers: Record<string, string[]> = {};
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50);
  try {
    for (const m of Object.values(METHODS)) {
      // Two anonymous, two with a credential that is not one: the same answer.
      const replies = await Promise.all(
        [undefined, undefined, "Bearer slw_not_a_token", "Bearer slw_not_a_token"].map((auth) =>
          hostileCall(server, m, auth),
        ),
      );
      answers[m.path] = replies.map((r) => `${r.status} ${r.code}`);
    }
  } finally {
    clearInterval(sampler);
  }
  const after = rssMb(pid);
  const resets = Object.values(answers)
    .flat()
    .filter((g) => g.includes("ECONNRESET")).length;
  console.log(
    `serve RSS: ${before.toFixed(0)} MB before, ${peak.toFixed(0)} MB peak, ${after.toFixed(0)} MB after ${Object.keys(METHODS).length} × 4 unauthenticated 16 MiB bodies (${resets} answered by a reset)`,
  );
  const loginCalls = new Set([METHODS.startLogin.path, METHODS.finishLogin.path]);
  for (const [path, got] of Object.entries(answers)) {
    const m = Object.values(METHODS).find((x) => x.path === path)!;
    const expected = loginCalls.has(path) ? "resource_exhausted" : "unauthenticated";
    const status = m.kind !== "unary" ? 200 : expected === "unauthenticated" ? 401 : 429; // Connect streams answer 200 with the error in the end frame
    // serve answers before reading and then closes: a client still sending may see the reset
    // instead of the answer. That is a refusal too; a success or a server error never is.
    const refused = got.filter((g) => g === `${status} ${expected}`);
    expect({ path, unexpected: got.filter((g) => g !== `${status} ${expected}` && !g.includes("ECONNRESET")) }).toEqual(
      { path, unexpected: [] },
    );
    expect({ path, answered: refused.length >= 1 }).toEqual({ path, answered: true });
  }
  expect(peak - before).toBeLessThan(100);
  expect(server.proc.exitCode).toBeNull();
  expect((await server.get("/livez")).status).toBe(200);
}, 60_000);
