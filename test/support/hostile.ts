/**
 * @module test/support/hostile
 * Hostile Connect bodies for the memory tests and bench: 16 MiB of empty nested messages
 * (`12 00` repeated), sent unauthenticated, and serve's resident memory from /proc.
 */
import { readFileSync } from "node:fs";
import type { RpcMethod } from "../../src/wire/depot.ts";
import type { Served } from "./serve.ts";

const MIB = 1024 * 1024;
/** 16 MiB of `12 00`: 8 Mi empty messages in field 2 (CreateBuild's options, and others' too). */
export const BOMB = new Uint8Array(16 * MIB).map((_, i) => (i % 2 ? 0x00 : 0x12));
/** The bomb as one Connect stream envelope (flags, big-endian length, payload). */
const FRAMED = new Uint8Array(5 + BOMB.length);
FRAMED.set([0, BOMB.length >>> 24, (BOMB.length >>> 16) & 0xff, (BOMB.length >>> 8) & 0xff, BOMB.length & 0xff]);
FRAMED.set(BOMB, 5);

export function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

/** What serve answered to one hostile body: the HTTP status and the Connect code (a stream's from its end frame). */
export async function hostileCall(
  s: Served,
  m: RpcMethod,
  authorization?: string,
): Promise<{ status: number; code: string }> {
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
    const r = await s.get(m.path, {
      method: "POST",
      headers: {
        "content-type": stream ? "application/connect+proto" : "application/proto",
        "content-length": String(whole.length),
        ...(authorization ? { authorization } : {}),
      },
      body,
      duplex: "half",
    } as RequestInit);
    answered = true;
    const bytes = new Uint8Array(await r.arrayBuffer());
    const json = JSON.parse(new TextDecoder().decode(stream && r.status === 200 ? bytes.subarray(5) : bytes)) as {
      code?: string;
      error?: { code: string };
    };
    return { status: r.status, code: json.error?.code ?? json.code ?? "none" };
  } catch (e) {
    return { status: 0, code: `fetch failed: ${(e as Error).message}` };
  }
}
