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
 *      concurrency; and the server's CPU per admission against three authenticated GetBuild
 *      calls (./admission.ts, which also runs this section alone).
 *   4. Trivial builds per minute end to end with the depot CLI (one after another).
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
import { unitEnvironment } from "../support/unit-env.ts";
import { admissionRows, admitter, benchProject as makeBenchProject, jsonPoster } from "./admission.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    runs: { type: "string", default: "10" },
    requests: { type: "string", default: "200" },
    builds: { type: "string", default: "5" },
  },
});
const RUNS = intOpt("runs", opts.runs!, 1, 100);
const REQUESTS = intOpt("requests", opts.requests!, 32, 10_000);
const BUILDS = intOpt("builds", opts.builds!, 1, 100);

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const image = (await ensureDockerdBuilderImage()).ref;
const work = mkdtempSync(join(tmpdir(), "slipway-bench-builds-"));
const rows: Row[] = [];

try {
  // 1 + 2: the builder service itself.
  const db = openDatabase(join(work, "bench.db"));
  applyMigrations(db);
  const applianceId = `bench${newId("a").slice(2, 10)}`;
  const org = newId("org");
  db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, 'bench', ?)").run(
    org,
    `bench-${org.slice(-6)}`,
    new Date().toISOString(),
  );
  const project = newId("prj");
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

  // 3 + 4: through the real server.
  let benchProject = "";
  const s = await serve(
    slipwayBinary(),
    join(work, "data"),
    ["--set", `builders.dockerd_image=${image}`, "--set", "volumes.encryption=none"],
    unitEnvironment(), // as the packaged slipway.service runs it
    { publicHost: "localhost" },
  );
  try {
    const admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
    const post = jsonPoster(s.get);
    const { projectId, token } = await makeBenchProject(post, admin);
    benchProject = projectId;
    const admit = admitter(post, token, projectId);
    await admit(); // starts the builder: admission below is on a warm one
    rows.push(...(await admissionRows({ get: s.get, pid: s.proc.pid, post, token, projectId, requests: REQUESTS })));

    // 4. Trivial builds per minute with the depot CLI.
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
  } finally {
    await s.stop();
    await removeBuildersOf([project, benchProject], docker);
  }
  console.log(`\nslipway builds bench: bun ${Bun.version}; dockerd runtime image ${image}`);
  for (const line of table(["metric", "slipway", "baseline", "ratio", "target"], rows)) console.log(line);
  console.log(
    "   baselines: cold start — docker run --rm of the same image; warm reuse — a SQLite point read; admission — GET /livez at the same concurrency; CPU — three authenticated GetBuild calls",
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
