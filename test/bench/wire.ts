/**
 * @module test/bench/wire
 * `bun test/bench/wire.ts`: the depot wire before and after it moved to @bufbuild/protobuf and
 * @connectrpc/connect, measured in the same run. "Before" is the tree at --before (a commit with
 * the hand-written codec), exported with `git archive` to a temp dir; "after" is this tree. The
 * rounds alternate between the two, so both see the same machine load.
 *
 *   1. The build endpoint's status tap (decode, then the steps and logs kept): an 8.5 KB BuildKit StatusResponse (12
 *      vertexes, 24 statuses, 19 log chunks), µs per message, median of --rounds rounds.
 *   2. Build admission through each tree's compiled `slipway serve` over HTTPS with the Connect
 *      JSON codec (CreateBuild → GetBuildKitConnection `active` on a warm builder), p50 at 1 and
 *      32 concurrent clients, as test/bench/builds.ts measures it.
 * A report: nothing fails on timing.
 *
 * Usage: bun test/bench/wire.ts [--before f46965c] [--rounds 15] [--requests 100] [--no-admission]
 */
import Docker from "dockerode";
import { create, toBinary } from "@bufbuild/protobuf";
import { admitter, benchProject, jsonPoster } from "./admission.ts";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { statusObserver } from "../../src/appliance/status-tap.ts";
import { StatusResponseSchema } from "../../src/wire/buildkit.ts";
import { ROOT, slipwayBinary } from "../support/binary.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { ensureDockerdBuilderImage } from "../support/builder-image.ts";
import { serve, type Served } from "../support/serve.ts";
import { unitEnvironment } from "../support/unit-env.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    before: { type: "string", default: "f46965c" },
    rounds: { type: "string", default: "15" },
    requests: { type: "string", default: "100" },
    "no-admission": { type: "boolean", default: false },
  },
});
const ROUNDS = intOpt("rounds", opts.rounds!, 3, 1000);
const REQUESTS = intOpt("requests", opts.requests!, 32, 10_000);
if (!/^[0-9a-f]{7,40}$/.test(opts.before!)) throw new Error("--before must be a commit id");

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** A BuildKit status message of about 8.5 KB, as a build with a few dozen steps sends it. */
function statusMessage(): Uint8Array {
  const at = timestampFromDate(new Date("2026-01-01T12:00:00.250Z"));
  const digest = (i: number) => `sha256:${i.toString(16).padStart(64, "0")}`;
  return toBinary(
    StatusResponseSchema,
    create(StatusResponseSchema, {
      vertexes: Array.from({ length: 12 }, (_, i) => ({
        digest: digest(i),
        inputs: i ? [digest(i - 1)] : [],
        name: `[stage ${i}] RUN make step-${i}`,
        cached: i % 3 === 0,
        started: at,
        ...(i % 2 ? { completed: at } : {}),
      })),
      statuses: Array.from({ length: 24 }, (_, i) => ({
        id: `extracting sha256:${i}`,
        vertex: digest(i % 12),
        name: "extracting",
        current: BigInt(i * 1_048_576),
        total: 41_943_040n,
        timestamp: at,
        started: at,
      })),
      logs: Array.from({ length: 19 }, (_, i) => ({
        vertex: digest(i % 12),
        timestamp: at,
        stream: 1n,
        msg: new TextEncoder().encode(`#${i} compiling src/module-${i}.c -O2 -Wall -o build/module-${i}.o\n`),
      })),
    }),
  );
}

const rows: Row[] = [];
const work = mkdtempSync(join(tmpdir(), "slipway-bench-wire-"));
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const projects: string[] = [];
try {
  // The tree before, with this tree's dependencies (a superset of its own).
  const before = join(work, "before");
  mkdirSync(before);
  const archive = Bun.spawnSync([
    "sh",
    "-c",
    'git -C "$1" archive "$2" | tar -x -C "$3"',
    "sh",
    ROOT,
    opts.before!,
    before,
  ]);
  if (archive.exitCode !== 0) throw new Error(`git archive ${opts.before} failed: ${archive.stderr.toString()}`);
  symlinkSync(join(ROOT, "node_modules"), join(before, "node_modules"));

  // 1. The status tap's decode, both observers fed the same bytes, rounds alternating.
  const message = statusMessage();
  const oldTap = (await import(join(before, "src/appliance/status-tap.ts"))) as {
    statusObserver: typeof statusObserver;
  };
  const noop = {
    builds: () => ({ observed: () => {} }),
    log: {
      warn: (m: string) => {
        throw new Error(m);
      },
    },
  };
  const taps = { before: oldTap.statusObserver("bench", noop), after: statusObserver("bench", noop) };
  const perOp: Record<keyof typeof taps, number[]> = { before: [], after: [] };
  const N = 2000;
  for (let r = 0; r < ROUNDS + 2; r++) {
    for (const k of r % 2 ? (["after", "before"] as const) : (["before", "after"] as const)) {
      const t = performance.now();
      for (let i = 0; i < N; i++) taps[k]("/moby.buildkit.v1.Control/Status", message);
      if (r >= 2) perOp[k].push(((performance.now() - t) * 1000) / N); // the first two rounds warm up
    }
  }
  rows.push([
    `status tap: observe ${(message.length / 1024).toFixed(1)} KB StatusResponse (µs, after)`,
    median(perOp.after),
    median(perOp.before),
    "µs",
    1,
  ]);

  // 2. Admission through each tree's compiled server, rounds alternating.
  if (!opts["no-admission"]) {
    const build = Bun.spawnSync([process.execPath, join(before, "scripts", "build.ts"), "--target", "x64"], {
      cwd: before,
      stdout: "pipe",
      stderr: "pipe",
    });
    if (build.exitCode !== 0) throw new Error(`building the tree before failed:\n${build.stderr.toString()}`);
    const image = (await ensureDockerdBuilderImage()).ref;
    const binaries = { before: join(before, "dist", "slipway"), after: slipwayBinary() };
    const servers: Partial<Record<keyof typeof binaries, { s: Served; admit: () => Promise<number> }>> = {};
    try {
      for (const k of ["before", "after"] as const) {
        const data = join(work, `data-${k}`);
        const s = await serve(
          binaries[k],
          data,
          ["--set", `builders.dockerd_image=${image}`, "--set", "volumes.encryption=none"],
          unitEnvironment(), // as the packaged slipway.service runs it
          { publicHost: "localhost" },
        );
        const admin = readFileSync(join(data, "initial-admin-token"), "utf8").trim();
        const post = jsonPoster(s.get);
        const { projectId, token } = await benchProject(post, admin);
        projects.push(projectId);
        const admit = admitter(post, token, projectId);
        await admit(); // starts the builder: admission below is on a warm one
        servers[k] = { s, admit };
      }
      for (const conc of [1, 32]) {
        const lat: Record<keyof typeof binaries, number[]> = { before: [], after: [] };
        const share = Math.max(conc, Math.floor(REQUESTS / 4));
        for (let r = 0; r < 4; r++) {
          for (const k of r % 2 ? (["after", "before"] as const) : (["before", "after"] as const)) {
            let left = share;
            await Promise.all(
              Array.from({ length: conc }, async () => {
                while (left-- > 0) lat[k].push(await servers[k]!.admit());
              }),
            );
          }
        }
        rows.push([`admission p50, ${conc} concurrent (ms, after)`, pct(lat.after, 50), pct(lat.before, 50), "ms", 2]);
        rows.push([`admission p99, ${conc} concurrent (ms, after)`, pct(lat.after, 99), pct(lat.before, 99), "ms", 2]);
      }
    } finally {
      for (const x of Object.values(servers)) await x?.s.stop();
      await removeBuildersOf(projects, docker);
    }
  }
  console.log(
    `\nslipway wire bench: bun ${Bun.version}; before = ${opts.before} (hand-written codec and Connect layer), after = this tree`,
  );
  for (const line of table(["metric", "after", "before", "ratio", "target"], rows)) console.log(line);
  console.log("   ratio = after / before (below 1: faster now); rounds alternate between the two trees");
} finally {
  rmSync(work, { recursive: true, force: true });
}
