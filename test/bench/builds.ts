/**
 * @module test/bench/builds
 * `bun test/bench/builds.ts`: builders and build admission on the real Docker engine with the
 * `dockerd` runtime image (built once and cached, as the tests do).
 *
 *   1. Builder cold start → ready (ListWorkers answers), p50 of --runs, on an existing volume;
 *      baseline: `docker run --rm` of a trivial container from the same image (the engine floor).
 *   2. Warm reuse: acquire of a running builder; baseline: a SQLite point read (the floor of
 *      any bookkeeping).
 *   3. Admission through `slipway serve` (the compiled binary) over HTTPS with the Connect JSON
 *      codec: CreateBuild → GetBuildKitConnection `active`, certificate included, at 1 and 32
 *      concurrent clients; baseline: GET /livez on the same server and client, at the same
 *      concurrency. With the server's CPU per admission (its event loop's, and all threads'),
 *      against three authenticated calls that do next to nothing (GetBuild): on one event loop
 *      the p50 at 32 clients is about 32 × the event loop's CPU per admission (closed loop).
 *   4. Trivial builds per minute end to end with the depot CLI (one after another).
 * `--sections 3` runs only the admission section (default: all four).
 * A report: nothing fails on timing.
 */
import Docker from "dockerode";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { builderServiceFactory } from "../../src/builders/index.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { run } from "../../src/host/run.ts";
import { newId } from "../../src/ids.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { plainVolumeManager } from "../../src/volumes/index.ts";
import { ROOT, slipwayBinary } from "../support/binary.ts";
import { builderTableDeps } from "../support/builder-deps.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { serve } from "../support/serve.ts";
import {
  admitter,
  benchProject as makeBenchProject,
  connectFloor,
  cpuTime,
  finishedBuild,
  jsonPoster,
} from "./admission.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    runs: { type: "string", default: "10" },
    requests: { type: "string", default: "200" },
    builds: { type: "string", default: "5" },
    sections: { type: "string", default: "1,2,3,4" },
  },
});
const SECTIONS = new Set(opts.sections!.split(",").map((x) => x.trim()));
if (![...SECTIONS].every((x) => ["1", "2", "3", "4"].includes(x))) {
  console.error(`--sections takes numbers 1 to 4 separated by commas, got ${JSON.stringify(opts.sections)}`);
  process.exit(2);
}
const RUNS = intOpt("runs", opts.runs!, 1, 100);
const REQUESTS = intOpt("requests", opts.requests!, 32, 10_000);
const BUILDS = intOpt("builds", opts.builds!, 1, 100);

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const image = (await ensureDockerdBuilderImage()).ref;
const work = mkdtempSync(join(tmpdir(), "slipway-bench-builds-"));
const rows: Row[] = [];

let project = "";
try {
  // 1 + 2: the builder service itself.
  if (SECTIONS.has("1") || SECTIONS.has("2")) {
    const db = openDatabase(join(work, "bench.db"));
    applyMigrations(db);
    const applianceId = `bench${newId("a").slice(2, 10)}`;
    const org = newId("org");
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, 'bench', ?)").run(
      org,
      `bench-${org.slice(-6)}`,
      new Date().toISOString(),
    );
    project = newId("prj");
    db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES (?, ?, 'bench', ?)").run(
      project,
      org,
      new Date().toISOString(),
    );
    const m = builderServiceFactory({
      db,
      ...builderTableDeps(db),
      docker,
      volumes: plainVolumeManager({ root: join(work, "volumes") }),
      applianceId,
      dataDir: work,
      runtime: "dockerd",
      image,
      log: silentLogger,
    });
    const native = (await docker.info()).Architecture === "aarch64" ? "linux/arm64" : "linux/amd64";
    const ref = { projectId: project, platform: native };
    await m.acquire(ref, "warm-up"); // creates the volume: later starts are on an existing one
    m.release("warm-up");
    const cold: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await m.stop(ref, "bench");
      const t = performance.now();
      await m.acquire(ref, `cold-${i}`);
      cold.push(performance.now() - t);
      m.release(`cold-${i}`);
      process.stderr.write(".");
    }
    const engine: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const r = await run(["docker", "run", "--rm", "--entrypoint", "/bin/true", image]);
      if (r.code !== 0) throw new Error(`docker run failed: ${r.stderr}`);
      engine.push(performance.now() - t);
    }
    const warm: number[] = [];
    const point: number[] = [];
    const q = db.query("SELECT * FROM builders WHERE project_id = ? AND platform = ?");
    for (let i = 0; i < 200; i++) {
      let t = performance.now();
      await m.acquire(ref, `warm-${i}`);
      warm.push(performance.now() - t);
      m.release(`warm-${i}`);
      t = performance.now();
      q.get(project, native);
      point.push(performance.now() - t);
    }
    await m.stop(ref, "bench done");
    m.close();
    db.close();
    rows.push([
      `builder cold start → ready, p50 of ${RUNS}`,
      pct(cold, 50),
      pct(engine, 50),
      "ms",
      0,
      { op: "≤", value: 2000 },
    ]);
    rows.push([`builder cold start → ready, max`, Math.max(...cold), Math.max(...engine), "ms", 0]);
    rows.push([
      "warm reuse (acquire a running builder), p50",
      pct(warm, 50),
      pct(point, 50),
      "ms",
      3,
      { op: "≤", value: 20 },
    ]);
    rows.push(["warm reuse, p99", pct(warm, 99), pct(point, 99), "ms", 3]);
  }

  // 3 + 4: through the real server.
  if (SECTIONS.has("3") || SECTIONS.has("4")) {
    let benchProject = "";
    const s = await serve(
      slipwayBinary(),
      join(work, "data"),
      ["--set", `builders.dockerd_image=${image}`, "--set", "volumes.encryption=none"],
      {},
      { publicHost: "localhost" },
    );
    try {
      const admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
      const post = jsonPoster(s.get);
      const { projectId, token } = await makeBenchProject(post, admin);
      benchProject = projectId;
      const admit = admitter(post, token, projectId);
      await admit(); // starts the builder: admission below is on a warm one
      const livez = async () => {
        const t = performance.now();
        await (await s.get("/livez")).text();
        return performance.now() - t;
      };
      if (SECTIONS.has("3")) {
        const floor = connectFloor(post, await finishedBuild(post, token, projectId));
        for (const conc of [1, 32]) {
          const measure = async (fn: () => Promise<number>) => {
            const out: number[] = [];
            let left = REQUESTS;
            await Promise.all(
              Array.from({ length: conc }, async () => {
                while (left-- > 0) out.push(await fn());
              }),
            );
            return out;
          };
          await measure(livez); // warm-up of this concurrency's connections
          const before = cpuTime(s.proc.pid);
          const a = await measure(admit);
          const spent = cpuTime(s.proc.pid);
          const l = await measure(livez);
          const f0 = cpuTime(s.proc.pid);
          const f = await measure(floor);
          const f1 = cpuTime(s.proc.pid);
          rows.push([
            `admission p50, ${conc} concurrent (create → active)`,
            pct(a, 50),
            pct(l, 50),
            "ms",
            2,
            { op: "≤", value: conc === 32 ? 10 : 5 },
          ]);
          rows.push([
            `admission p99, ${conc} concurrent`,
            pct(a, 99),
            pct(l, 99),
            "ms",
            2,
            conc === 32 ? { op: "≤", value: 25 } : undefined,
          ]);
          rows.push([`  vs 3 authenticated GetBuild calls, p50, ${conc} concurrent`, pct(a, 50), pct(f, 50), "ms", 2]);
          // The finish after each clock stop is part of every admission's cost: all three calls.
          rows.push([
            `  server CPU ms per admission, event loop (${conc} concurrent) vs 3 GetBuild calls`,
            (spent.mainThread - before.mainThread) / REQUESTS,
            (f1.mainThread - f0.mainThread) / REQUESTS,
            "ms",
            3,
          ]);
          rows.push([
            `  server CPU ms per admission, all threads (${conc} concurrent) vs 3 GetBuild calls`,
            (spent.process - before.process) / REQUESTS,
            (f1.process - f0.process) / REQUESTS,
            "ms",
            2,
          ]);
        }
      }

      // 4. Trivial builds per minute with the depot CLI.
      if (SECTIONS.has("4")) {
        const depot = join(ROOT, "node_modules", "@depot", "cli-linux-x64", "bin", "depot");
        const ctx = join(work, "ctx");
        writeBusyboxContext(ctx, "RUN echo trivial");
        const env = {
          PATH: process.env.PATH ?? "",
          HOME: work,
          DEPOT_API_URL: s.url,
          DEPOT_TOKEN: token,
          SSL_CERT_FILE: join(work, "data", "ca.pem"),
          DEPOT_NO_UPDATE_NOTIFIER: "1",
          DEPOT_DISABLE_OTEL: "1",
          DEPOT_ERROR_TELEMETRY: "0",
        };
        const t0 = performance.now();
        for (let i = 0; i < BUILDS; i++) {
          const r = await run(
            [depot, "build", "--project", projectId, "--progress", "plain", "--build-arg", `N=${i}`, ctx],
            {
              env,
              timeoutMs: 120_000,
            },
          );
          if (r.code !== 0) throw new Error(`depot build failed: ${r.stderr.slice(-500)}`);
        }
        const perMinute = (BUILDS / (performance.now() - t0)) * 60_000;
        rows.push([`trivial builds per minute (depot CLI, ${BUILDS} sequential)`, perMinute, Number.NaN, "/min", 1]);
      }
    } finally {
      await s.stop();
      await removeBuildersOf([project, benchProject], docker);
    }
  }
  console.log(`\nslipway builds bench: bun ${Bun.version}; dockerd runtime image ${image}`);
  for (const line of table(["metric", "slipway", "baseline", "ratio", "target"], rows)) console.log(line);
  console.log(
    "   baselines: cold start — docker run --rm of the same image; warm reuse — a SQLite point read; admission — GET /livez at the same concurrency; CPU — three authenticated GetBuild calls",
  );
} finally {
  if (!(SECTIONS.has("3") || SECTIONS.has("4"))) await removeBuildersOf([project], docker); // else done above
  rmSync(work, { recursive: true, force: true });
}
