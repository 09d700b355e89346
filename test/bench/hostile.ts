/**
 * @module test/bench/hostile
 * What unauthenticated hostile bodies cost the compiled `serve`: --concurrent (4) anonymous
 * 16 MiB CreateBuild bodies of empty nested messages (`12 00` repeated), --rounds (5) times —
 * the time until every one is answered, and serve's resident memory before, at its peak and
 * after — against a same-run baseline of --concurrent GET /livez. Loopback only.
 * A report: nothing here fails on timing; non-zero exit only if the bench cannot run or a
 * hostile body is not refused.
 *
 * Usage: bun test/bench/hostile.ts [--concurrent 4] [--rounds 5]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { METHODS } from "../../src/wire/depot.ts";
import { slipwayBinary } from "../support/binary.ts";
import { hostileCall, rssMb } from "../support/hostile.ts";
import { serve, type Served } from "../support/serve.ts";
import { unitEnvironment } from "../support/unit-env.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: { concurrent: { type: "string", default: "4" }, rounds: { type: "string", default: "5" } },
});
const concurrent = intOpt("concurrent", opts.concurrent, 1, 16);
const rounds = intOpt("rounds", opts.rounds, 1, 100);

const work = mkdtempSync(join(tmpdir(), "slipway-bench-hostile-"));
let s: Served | undefined;
try {
  s = await serve(slipwayBinary(), join(work, "data"), [], unitEnvironment()); // as the packaged unit runs it
  const pid = s.proc.pid;
  /** Best-of-rounds milliseconds until all of `concurrent` calls are answered. */
  const timed = async (call: () => Promise<unknown>) => {
    let best = Infinity;
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      await Promise.all(Array.from({ length: concurrent }, call));
      best = Math.min(best, performance.now() - t);
    }
    return best;
  };
  for (let i = 0; i < 3; i++) await (await s.get("/livez")).arrayBuffer(); // warm the connection pool and the server
  const livez = await timed(async () => (await s!.get("/livez")).arrayBuffer());

  const before = rssMb(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 20);
  const refusals = new Set<string>();
  const hostile = await timed(async () => {
    const r = await hostileCall(s!, METHODS.createBuild);
    refusals.add(`${r.status} ${r.code}`);
  });
  clearInterval(sampler);
  const after = rssMb(pid);

  const rows: Row[] = [
    [`${concurrent} × anonymous 16 MiB CreateBuild (12 00), all answered`, hostile, livez, "ms", 1],
    ["serve RSS before", before, Number.NaN, "MB", 0],
    ["serve RSS peak (sampled every 20 ms)", peak, Number.NaN, "MB", 0],
    ["serve RSS after", after, Number.NaN, "MB", 0],
    ["serve RSS growth", peak - before, Number.NaN, "MB", 0, { op: "≤", value: 100 }],
  ];
  console.log(table(["hostile bodies", "slipway", `${concurrent} × GET /livez`, "ratio", ""], rows).join("\n"));
  console.log(`answers: ${[...refusals].join(", ")}`);
  if ([...refusals].some((r) => r !== "401 unauthenticated" && !r.includes("ECONNRESET"))) process.exitCode = 1;
} finally {
  await s?.stop();
  rmSync(work, { recursive: true, force: true });
}
