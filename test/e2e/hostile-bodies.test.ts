/**
 * @module test/e2e/hostile-bodies
 * Memory exhaustion before authentication, on the compiled binary: four concurrent anonymous
 * 16 MiB bodies of empty nested messages (`12 00` repeated) on every Connect method of the
 * depot wire contract. Each is answered without being decoded — 401 (unauthenticated) or, for
 * the anonymous-by-design login calls, 429 (resource_exhausted: over the size cap); a stream's
 * answer is the same code in its end frame — and serve's resident memory grows by under 100 MB.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { METHODS, type RpcMethod } from "../../src/wire/depot.ts";
import { slipwayBinary } from "../support/binary.ts";
import { serve, type Served } from "../support/serve.ts";

const MIB = 1024 * 1024;
/** 16 MiB of `12 00`: 8 Mi empty messages in field 2 (CreateBuild's options, and others' too). */
export const BOMB = new Uint8Array(16 * MIB).map((_, i) => (i % 2 ? 0x00 : 0x12));
/** The bomb as one Connect stream envelope (flags, big-endian length, payload). */
const FRAMED = new Uint8Array(5 + BOMB.length);
FRAMED.set([0, BOMB.length >>> 24, (BOMB.length >>> 16) & 0xff, (BOMB.length >>> 8) & 0xff, BOMB.length & 0xff]);
FRAMED.set(BOMB, 5);

let work: string;
let server: Served;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "slipway-hostile-"));
  server = await serve(slipwayBinary(), join(work, "data"));
});

afterAll(async () => {
  if (server?.proc.exitCode === null) await server.stop();
  rmSync(work, { recursive: true, force: true });
});

export function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

/** What serve answered to one hostile body: the HTTP status and the Connect code (a stream's from its end frame). */
export async function hostileCall(s: Served, m: RpcMethod, authorization?: string): Promise<{ status: number; code: string }> {
  const stream = m.kind !== "unary";
  const whole = stream ? FRAMED : BOMB;
  // Streamed in 256 KiB chunks with its length declared, and no more once the answer has come:
  // what serve does not read is not sent, which keeps this test's traffic small.
  let answered = false;
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (answered || at >= whole.length) return c.close();
      c.enqueue(whole.subarray(at, (at += 256 * 1024)));
    },
  });
  try {
    const r = await s.get(m.path, { method: "POST", headers: { "content-type": stream ? "application/connect+proto" : "application/proto", "content-length": String(whole.length), ...(authorization ? { authorization } : {}) }, body, duplex: "half" } as RequestInit);
    answered = true;
    const bytes = new Uint8Array(await r.arrayBuffer());
    const json = JSON.parse(new TextDecoder().decode(stream && r.status === 200 ? bytes.subarray(5) : bytes)) as { code?: string; error?: { code: string } };
    return { status: r.status, code: json.error?.code ?? json.code ?? "none" };
  } catch (e) {
    return { status: 0, code: `fetch failed: ${(e as Error).message}` };
  }
}

test("four concurrent unauthenticated 16 MiB bodies on every Connect method: 401 or 429 without decoding, RSS grows by under 100 MB", async () => {
  const pid = server.proc.pid;
  const before = rssMb(pid);
  const answers: Record<string, string[]> = {};
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50);
  try {
    for (const m of Object.values(METHODS)) {
      // Two anonymous, two with a credential that is not one: the same answer.
      const replies = await Promise.all([undefined, undefined, "Bearer slw_not_a_token", "Bearer slw_not_a_token"].map((auth) => hostileCall(server, m, auth)));
      answers[m.path] = replies.map((r) => `${r.status} ${r.code}`);
    }
  } finally {
    clearInterval(sampler);
  }
  const after = rssMb(pid);
  const resets = Object.values(answers).flat().filter((g) => g.includes("ECONNRESET")).length;
  console.log(`serve RSS: ${before.toFixed(0)} MB before, ${peak.toFixed(0)} MB peak, ${after.toFixed(0)} MB after ${Object.keys(METHODS).length} × 4 unauthenticated 16 MiB bodies (${resets} answered by a reset)`);
  const loginCalls = new Set([METHODS.startLogin.path, METHODS.finishLogin.path]);
  for (const [path, got] of Object.entries(answers)) {
    const m = Object.values(METHODS).find((x) => x.path === path)!;
    const expected = loginCalls.has(path) ? "resource_exhausted" : "unauthenticated";
    const status = m.kind !== "unary" ? 200 : expected === "unauthenticated" ? 401 : 429; // Connect streams answer 200 with the error in the end frame
    // serve answers before reading and then closes: a client still sending may see the reset
    // instead of the answer. That is a refusal too; a success or a server error never is.
    const refused = got.filter((g) => g === `${status} ${expected}`);
    expect({ path, unexpected: got.filter((g) => g !== `${status} ${expected}` && !g.includes("ECONNRESET")) }).toEqual({ path, unexpected: [] });
    expect({ path, answered: refused.length >= 1 }).toEqual({ path, answered: true });
  }
  expect(peak - before).toBeLessThan(100);
  expect(server.proc.exitCode).toBeNull();
  expect((await server.get("/livez")).status).toBe(200);
}, 60_000);
