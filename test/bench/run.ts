/**
 * @module test/bench/run
 * `bun run bench`: measures the COMPILED `dist/slipway` against a minimal compiled Bun HTTPS
 * server (test/bench/baseline-server.ts) measured in the same run, and prints a table of
 * figures and slipway/baseline ratios. It is a report, not a test: nothing here fails on
 * timing; the exit code is non-zero only when the bench itself cannot run (build fails, a
 * server does not come up).
 *
 * Measured, for both servers, each started from a copy of the binary in an empty temp dir
 * with a minimal environment (plus what the packaged slipway.service sets, test/support/unit-env.ts)
 * and only 127.0.0.1 addresses:
 *   1. exec → first 200 from GET /readyz over HTTPS (trusting DIR/ca.pem; the baseline's own
 *      self-signed cert), polled every --poll-ms; --runs starts on an empty data dir, plus
 *      --restarts starts of slipway on an already-initialized one.
 *   2. VmRSS 1 s after ready (and VmHWM, the start-up peak), from /proc/<pid>/status.
 *   3. GET /livez requests/s and latency with keep-alive, --concurrency fetch loops in this
 *      process (a separate process from the server) for --duration seconds after a 1 s warm-up.
 *
 * Usage: bun test/bench/run.ts [--json] [--runs 10] [--restarts 5] [--duration 5]
 *        [--concurrency 32] [--poll-ms 2] [--rebuild]
 * Progress goes to stderr; the table (or JSON with --json) to stdout.
 */
import { parseArgs } from "node:util";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { unitEnvironment } from "../support/unit-env.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "10" },
    restarts: { type: "string", default: "5" },
    duration: { type: "string", default: "5" },
    concurrency: { type: "string", default: "32" },
    "poll-ms": { type: "string", default: "2" },
    rebuild: { type: "boolean", default: false },
  },
});

const RUNS = intOpt("runs", opts.runs, 1, 50);
const RESTARTS = intOpt("restarts", opts.restarts, 0, 50);
const DURATION_MS = intOpt("duration", opts.duration, 1, 30) * 1000;
const CONCURRENCY = intOpt("concurrency", opts.concurrency, 1, 256);
const POLL_MS = intOpt("poll-ms", opts["poll-ms"], 1, 100);
const WARMUP_MS = 1000;
const IDLE_WAIT_MS = 1000;
const READY_DEADLINE_MS = 20_000;
const STOP_GRACE_MS = 5000;
const HOST = "127.0.0.1";

const ROOT = join(import.meta.dir, "..", "..");
const DIST_BIN = join(ROOT, "dist", "slipway");
const TARGETS = { start: 300, rss: 80 } as const;

type Kind = "slipway" | "baseline";

// ---------------------------------------------------------------------------------------------
// Process and temp-dir bookkeeping: everything started is killed, the temp root removed, on
// normal exit, on errors and on SIGINT/SIGTERM.

const live = new Set<Subprocess>();
const tmpRoot = mkdtempSync(join(tmpdir(), "slipway-bench-"));
let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const p of live) {
    try {
      p.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
  rmSync(tmpRoot, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    progress(`\n${sig}: stopping servers and removing ${tmpRoot}`);
    cleanup();
    process.exit(sig === "SIGINT" ? 130 : 143);
  });
}

function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Builds.

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) {
    if (entry === "node_modules" || entry.startsWith(".")) continue;
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

function run(cmd: string[], what: string): void {
  const started = performance.now();
  const r = Bun.spawnSync(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    process.stderr.write(r.stdout.toString() + r.stderr.toString());
    throw new Error(`${what} failed (exit ${r.exitCode}): ${cmd.join(" ")}`);
  }
  progress(`${what}: ${Math.round(performance.now() - started)} ms`);
}

/** Rebuilds dist/slipway when missing or older than its sources (or with --rebuild). */
function ensureSlipwayBuilt(): void {
  const binTime = existsSync(DIST_BIN) ? statSync(DIST_BIN).mtimeMs : 0;
  const srcTime = Math.max(
    ...["src", "migrations", "web", "scripts/build.ts", "package.json"].map((p) => newestMtime(join(ROOT, p))),
  );
  if (opts.rebuild || binTime === 0 || srcTime > binTime) {
    run([process.execPath, "scripts/build.ts", "--target", "x64"], "build dist/slipway");
  } else {
    progress("dist/slipway is newer than src/ and migrations/; not rebuilding (--rebuild forces)");
  }
}

interface Prepared {
  /** Binary copied alone into an empty directory, the cwd of every start. */
  bin: string;
  cwd: string;
  /** Baseline only: its certificate (also the trust anchor) and key. */
  cert?: string;
  key?: string;
}

function prepare(): Record<Kind, Prepared> {
  ensureSlipwayBuilt();
  const slipDir = join(tmpRoot, "slipway-bin");
  mkdirSync(slipDir);
  copyFileSync(DIST_BIN, join(slipDir, "slipway"));

  const baseDir = join(tmpRoot, "baseline-bin");
  mkdirSync(baseDir);
  run(
    [
      process.execPath,
      "build",
      "--compile",
      "--bytecode",
      "--format=esm",
      "--target=bun-linux-x64-baseline",
      join(import.meta.dir, "baseline-server.ts"),
      "--outfile",
      join(baseDir, "baseline"),
    ],
    "compile baseline",
  );
  // The certificate lives outside the binary's directory so that stays empty but for it.
  const certDir = join(tmpRoot, "baseline-tls");
  mkdirSync(certDir);
  const cert = join(certDir, "cert.pem");
  const key = join(certDir, "key.pem");
  run(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-days",
      "1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    "baseline certificate (openssl, P-256 like slipway's)",
  );
  return {
    slipway: { bin: join(slipDir, "slipway"), cwd: slipDir },
    baseline: { bin: join(baseDir, "baseline"), cwd: baseDir, cert, key },
  };
}

// ---------------------------------------------------------------------------------------------
// Starting, probing and stopping one server.

function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } }));
  const ports = listeners.map((l) => l.port);
  for (const l of listeners) l.stop(true);
  return ports;
}

interface Running {
  kind: Kind;
  proc: Subprocess;
  url: string;
  caPath: string;
  logPath: string;
  /** performance.now() and Date.now() just before exec. */
  t0: number;
  wall0: number;
}

let startSeq = 0;
const homeDir = join(tmpRoot, "home");
mkdirSync(homeDir);
const emptyConfig = join(tmpRoot, "empty.toml");
writeFileSync(emptyConfig, "");
// Nothing from the caller's environment (SLIPWAY_*, XDG_*) reaches the servers; both get the
// packaged slipway.service's settings (the allocator's), as serve runs when installed.
const childEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: homeDir, ...unitEnvironment() };

function start(kind: Kind, p: Prepared, dataDir: string): Running {
  const seq = ++startSeq;
  const logPath = join(tmpRoot, `${seq}-${kind}.log`);
  const [port, buildPort] = freePorts(2) as [number, number];
  const cmd =
    kind === "slipway"
      ? [
          p.bin,
          "serve",
          "--config",
          emptyConfig,
          "--data-dir",
          dataDir,
          "--listen",
          `${HOST}:${port}`,
          "--build-listen",
          `${HOST}:${buildPort}`,
        ]
      : [p.bin, "--cert", p.cert!, "--key", p.key!, "--listen", `${HOST}:${port}`];
  const wall0 = Date.now();
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, {
    cwd: p.cwd,
    env: childEnv,
    stdin: "ignore",
    stdout: Bun.file(`${logPath}.out`),
    stderr: Bun.file(logPath),
  });
  live.add(proc);
  return {
    kind,
    proc,
    url: `https://${HOST}:${port}`,
    caPath: kind === "slipway" ? join(dataDir, "ca.pem") : p.cert!,
    logPath,
    t0,
    wall0,
  };
}

function logTail(r: Running): string {
  try {
    return readFileSync(r.logPath, "utf8").trimEnd().split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

function readText(path: string): string | null {
  try {
    const text = readFileSync(path, "utf8");
    return text.includes("-----END CERTIFICATE-----") ? text : null;
  } catch {
    return null;
  }
}

/** Polls GET /readyz until 200; returns ms since exec and the trusted CA PEM. */
async function waitReady(r: Running): Promise<{ ms: number; ca: string }> {
  let ca: string | null = null;
  let lastError = "";
  for (;;) {
    const now = performance.now();
    if (r.proc.exitCode !== null || r.proc.signalCode !== null) {
      throw new Error(
        `${r.kind} exited (${r.proc.exitCode ?? r.proc.signalCode}) before /readyz answered 200; log:\n${logTail(r)}`,
      );
    }
    if (now - r.t0 > READY_DEADLINE_MS)
      throw new Error(
        `${r.kind}: no 200 from /readyz within ${READY_DEADLINE_MS} ms (last: ${lastError}); log:\n${logTail(r)}`,
      );
    ca ??= readText(r.caPath);
    if (ca !== null) {
      try {
        const res = await fetch(`${r.url}/readyz`, { tls: { ca }, signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return { ms: performance.now() - r.t0, ca };
        lastError = `HTTP ${res.status}`;
      } catch (e) {
        const code = (e as { code?: string }).code ?? String(e);
        lastError = code;
        // Not up yet is expected; anything else (TLS) may mean a stale ca.pem: read it again.
        if (code !== "ConnectionRefused" && code !== "ECONNREFUSED") ca = null;
      }
    }
    await Bun.sleep(POLL_MS);
  }
}

/**
 * Slipway only: ms from exec to its first JSON log line (runtime + module load) and to
 * "slipway is serving" (first-start work done, listening), from the log's ms timestamps.
 */
function logPhases(r: Running): { firstLogMs: number; servingLogMs: number } {
  let firstLogMs = NaN;
  let servingLogMs = NaN;
  try {
    for (const line of readFileSync(r.logPath, "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      const rec = JSON.parse(line) as { time?: string; msg?: string };
      const at = rec.time ? Date.parse(rec.time) - r.wall0 : NaN;
      if (Number.isNaN(firstLogMs)) firstLogMs = at;
      if (rec.msg === "slipway is serving") {
        servingLogMs = at;
        break;
      }
    }
  } catch {
    // a log format change only loses these two diagnostics
  }
  return { firstLogMs, servingLogMs };
}

interface Memory {
  rssMB: number;
  hwmMB: number;
}

function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]) / 1024;
  };
  return { rssMB: kb("VmRSS"), hwmMB: kb("VmHWM") };
}

/** SIGTERM, then SIGKILL after a grace period; returns ms to exit and the exit code. */
async function stop(r: Running): Promise<{ ms: number; exitCode: number | null; signal: string | null }> {
  const t = performance.now();
  r.proc.kill("SIGTERM");
  const exited = await Promise.race([r.proc.exited.then(() => true), Bun.sleep(STOP_GRACE_MS).then(() => false)]);
  if (!exited) {
    progress(`  ${r.kind} ignored SIGTERM for ${STOP_GRACE_MS} ms; killing`);
    r.proc.kill("SIGKILL");
    await r.proc.exited;
  }
  live.delete(r.proc);
  const ms = performance.now() - t;
  if (r.proc.exitCode !== 0)
    progress(
      `  note: ${r.kind} exited with ${r.proc.exitCode ?? r.proc.signalCode} after SIGTERM; log:\n${logTail(r)}`,
    );
  const signal = r.proc.signalCode;
  return { ms, exitCode: r.proc.exitCode, signal: signal === null ? null : String(signal) };
}

// ---------------------------------------------------------------------------------------------
// Load generator: CONCURRENCY keep-alive fetch loops against one URL for a fixed time.

interface LoadResult {
  requests: number;
  errors: number;
  non200: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
  connections: number | null;
}

/** Established TCP connections to the server's port (from /proc/net/tcp), to confirm keep-alive. */
function establishedTo(port: number): number | null {
  try {
    const hex = port.toString(16).toUpperCase().padStart(4, "0");
    let n = 0;
    for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        // local_address rem_address st: client side has rem port == server port, state 01.
        if (f[2]?.endsWith(`:${hex}`) && f[3] === "01") n++;
      }
    }
    return n;
  } catch {
    return null;
  }
}

async function load(url: string, ca: string, durationMs: number, record: boolean): Promise<LoadResult> {
  const latencies: number[] = [];
  let requests = 0;
  let errors = 0;
  let non200 = 0;
  const abort = new AbortController();
  const safety = setTimeout(() => abort.abort(), durationMs + 10_000);
  const port = Number(new URL(url).port);
  let connections: number | null = null;
  const sampler = setTimeout(() => (connections = establishedTo(port)), durationMs / 2);
  const started = performance.now();
  const end = started + durationMs;
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        const res = await fetch(url, { tls: { ca }, signal: abort.signal });
        await res.arrayBuffer();
        if (res.status !== 200) non200++;
        if (record) latencies.push(performance.now() - t);
        requests++;
      } catch {
        if (abort.signal.aborted) return;
        errors++;
        await Bun.sleep(1);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  const elapsed = performance.now() - started;
  clearTimeout(safety);
  clearTimeout(sampler);
  latencies.sort((a, b) => a - b);
  return {
    requests,
    errors,
    non200,
    rps: requests / (elapsed / 1000),
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    maxms: latencies.at(-1) ?? NaN,
    connections,
  };
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting.

/** Nearest-rank percentile of an ascending-sorted array. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

function stats(xs: number[]): { min: number; p50: number; p90: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? NaN, p50: percentile(s, 50), p90: percentile(s, 90), max: s.at(-1) ?? NaN };
}

const round1 = (x: number) => Math.round(x * 10) / 10;

// ---------------------------------------------------------------------------------------------
// The bench.

interface StartRun {
  readyMs: number;
  firstLogMs: number;
  servingLogMs: number;
  rssMB: number;
  hwmMB: number;
  stopMs: number;
  exitCode: number | null;
}

async function startRun(kind: Kind, p: Prepared, dataDir: string, measureMemory: boolean): Promise<StartRun> {
  const r = start(kind, p, dataDir);
  try {
    const { ms } = await waitReady(r);
    let mem: Memory = { rssMB: NaN, hwmMB: NaN };
    if (measureMemory) {
      await Bun.sleep(IDLE_WAIT_MS);
      mem = memory(r.proc.pid);
    }
    const phases = r.kind === "slipway" ? logPhases(r) : { firstLogMs: NaN, servingLogMs: NaN };
    const s = await stop(r);
    return { readyMs: ms, ...phases, ...mem, stopMs: s.ms, exitCode: s.exitCode };
  } catch (e) {
    r.proc.kill("SIGKILL");
    live.delete(r.proc);
    throw e;
  }
}

async function loadRun(kind: Kind, p: Prepared, dataDir: string): Promise<LoadResult & { rssAfterMB: number }> {
  const r = start(kind, p, dataDir);
  try {
    const { ca } = await waitReady(r);
    await load(`${r.url}/livez`, ca, WARMUP_MS, false);
    const result = await load(`${r.url}/livez`, ca, DURATION_MS, true);
    const { rssMB } = memory(r.proc.pid);
    await stop(r);
    return { ...result, rssAfterMB: rssMB };
  } catch (e) {
    r.proc.kill("SIGKILL");
    live.delete(r.proc);
    throw e;
  }
}

async function main(): Promise<void> {
  const benchStarted = performance.now();
  const prepared = prepare();
  let dataSeq = 0;
  const freshDataDir = () => {
    const d = join(tmpRoot, `data-${++dataSeq}`);
    mkdirSync(d);
    return d;
  };

  progress("warm-up start of each server (not counted)");
  for (const kind of ["slipway", "baseline"] as const) await startRun(kind, prepared[kind], freshDataDir(), false);

  // Interleaved so drift in the machine's state affects both alike.
  const starts: Record<Kind, StartRun[]> = { slipway: [], baseline: [] };
  let slipwayDataDir = "";
  for (let i = 0; i < RUNS; i++) {
    for (const kind of ["slipway", "baseline"] as const) {
      const dir = freshDataDir();
      if (kind === "slipway") slipwayDataDir = dir;
      const res = await startRun(kind, prepared[kind], dir, true);
      starts[kind].push(res);
      progress(
        `start ${i + 1}/${RUNS} ${kind.padEnd(8)} ready ${res.readyMs.toFixed(1)} ms, rss ${res.rssMB.toFixed(1)} MB, stop ${res.stopMs.toFixed(1)} ms`,
      );
    }
  }

  const restartRuns: StartRun[] = [];
  for (let i = 0; i < RESTARTS; i++) {
    const res = await startRun("slipway", prepared.slipway, slipwayDataDir, false);
    restartRuns.push(res);
    progress(`restart ${i + 1}/${RESTARTS} slipway  ready ${res.readyMs.toFixed(1)} ms`);
  }

  const loads = {} as Record<Kind, Awaited<ReturnType<typeof loadRun>>>;
  for (const kind of ["slipway", "baseline"] as const) {
    progress(`load ${kind}: ${CONCURRENCY} keep-alive loops, ${WARMUP_MS} ms warm-up + ${DURATION_MS} ms`);
    loads[kind] = await loadRun(kind, prepared[kind], kind === "slipway" ? slipwayDataDir : freshDataDir());
    const l = loads[kind];
    progress(
      `  ${Math.round(l.rps)} req/s, p50 ${l.p50ms.toFixed(2)} ms, p99 ${l.p99ms.toFixed(2)} ms, errors ${l.errors}, non-200 ${l.non200}, connections ${l.connections ?? "?"}`,
    );
  }

  const s = {
    slipway: stats(starts.slipway.map((x) => x.readyMs)),
    baseline: stats(starts.baseline.map((x) => x.readyMs)),
  };
  const restarts = restartRuns.map((x) => x.readyMs);
  const restart = stats(restarts);
  const firstLog = stats(starts.slipway.map((x) => x.firstLogMs));
  const servingLog = stats(starts.slipway.map((x) => x.servingLogMs));
  const restartServingLog = stats(restartRuns.map((x) => x.servingLogMs));
  const rss = {
    slipway: stats(starts.slipway.map((x) => x.rssMB)),
    baseline: stats(starts.baseline.map((x) => x.rssMB)),
  };
  const hwm = {
    slipway: stats(starts.slipway.map((x) => x.hwmMB)),
    baseline: stats(starts.baseline.map((x) => x.hwmMB)),
  };
  const stopS = {
    slipway: stats(starts.slipway.map((x) => x.stopMs)),
    baseline: stats(starts.baseline.map((x) => x.stopMs)),
  };
  const badExits = (["slipway", "baseline"] as const).flatMap((k) =>
    starts[k].filter((x) => x.exitCode !== 0).map(() => k),
  );
  const totalS = (performance.now() - benchStarted) / 1000;

  const environment = {
    bun: Bun.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    kernel: release(),
    runs: RUNS,
    restarts: RESTARTS,
    durationMs: DURATION_MS,
    concurrency: CONCURRENCY,
    pollMs: POLL_MS,
    binarySizeMB: {
      slipway: round1(statSync(prepared.slipway.bin).size / 2 ** 20),
      baseline: round1(statSync(prepared.baseline.bin).size / 2 ** 20),
    },
  };

  if (opts.json) {
    const out = {
      environment,
      targets: { readyEmptyP50Ms: TARGETS.start, idleRssP50MB: TARGETS.rss },
      slipway: {
        readyEmptyMs: s.slipway,
        readyRestartMs: restart,
        firstLogMs: firstLog,
        servingLogEmptyMs: servingLog,
        servingLogRestartMs: restartServingLog,
        idleRssMB: rss.slipway,
        startPeakRssMB: hwm.slipway,
        stopMs: stopS.slipway,
        load: loads.slipway,
        runs: starts.slipway,
        restartRuns,
      },
      baseline: {
        readyEmptyMs: s.baseline,
        idleRssMB: rss.baseline,
        startPeakRssMB: hwm.baseline,
        stopMs: stopS.baseline,
        load: loads.baseline,
        runs: starts.baseline,
      },
      badExits,
      totalSeconds: round1(totalS),
    };
    const rounded = (_: string, v: unknown) =>
      typeof v === "number" && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v;
    process.stdout.write(`${JSON.stringify(out, rounded, 2)}\n`);
    return;
  }

  const rows: Row[] = [
    ["exec → /readyz 200, empty dir (min)", s.slipway.min, s.baseline.min, "ms", 0],
    ["exec → /readyz 200, empty dir (p50)", s.slipway.p50, s.baseline.p50, "ms", 0, { op: "≤", value: TARGETS.start }],
    ["exec → /readyz 200, empty dir (p90)", s.slipway.p90, s.baseline.p90, "ms", 0, { op: "≤", value: TARGETS.start }],
    ["  of which exec → first log line (p50)", firstLog.p50, NaN, "ms", 0],
    ["  of which exec → 'serving' log (p50)", servingLog.p50, NaN, "ms", 0],
  ];
  if (RESTARTS > 0) {
    rows.push(
      ["exec → /readyz 200, restart (p50)", restart.p50, s.baseline.p50, "ms", 0, { op: "≤", value: TARGETS.start }],
      ["  of which exec → 'serving' log (p50)", restartServingLog.p50, NaN, "ms", 0],
    );
  }
  rows.push(
    ["idle RSS 1 s after ready (p50)", rss.slipway.p50, rss.baseline.p50, "MB", 1, { op: "≤", value: TARGETS.rss }],
    ["peak RSS during start, VmHWM (p50)", hwm.slipway.p50, hwm.baseline.p50, "MB", 1],
    [
      `GET /livez req/s (${CONCURRENCY} conns, ${DURATION_MS / 1000} s)`,
      loads.slipway.rps,
      loads.baseline.rps,
      "/s",
      0,
    ],
    ["GET /livez latency p50", loads.slipway.p50ms, loads.baseline.p50ms, "ms", 2],
    ["GET /livez latency p99", loads.slipway.p99ms, loads.baseline.p99ms, "ms", 2],
    ["RSS right after the load", loads.slipway.rssAfterMB, loads.baseline.rssAfterMB, "MB", 1],
    ["SIGTERM → exit (p50)", stopS.slipway.p50, stopS.baseline.p50, "ms", 1],
  );

  const lines = table(["metric", "slipway", "baseline", "ratio", "target"], rows);

  const raw = (xs: number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join(" ");
  const out = [
    `slipway bench: bun ${environment.bun}, ${environment.cpus} × ${environment.cpu}, linux ${environment.kernel}`,
    `binaries: slipway ${environment.binarySizeMB.slipway} MB, baseline ${environment.binarySizeMB.baseline} MB (both bun-linux-x64-baseline, --compile); ${RUNS} runs each, /readyz polled every ${POLL_MS} ms`,
    "",
    ...lines,
    "",
    "ratio = slipway / baseline (restart row: against the baseline's empty-dir p50; the baseline has no state)",
    "'of which' rows come from slipway's own log timestamps (ms resolution): runtime + module load, then first-start work until listening",
    `raw exec → ready, empty dir (ms)  slipway:  ${raw(starts.slipway.map((x) => x.readyMs))}`,
    `                                  baseline: ${raw(starts.baseline.map((x) => x.readyMs))}`,
    `raw exec → 'serving' log (ms)     slipway:  ${raw(starts.slipway.map((x) => x.servingLogMs))}`,
    ...(RESTARTS > 0 ? [`raw exec → ready, restart (ms)    slipway:  ${raw(restarts)}`] : []),
    `raw idle RSS (MB)                 slipway:  ${raw(
      starts.slipway.map((x) => x.rssMB),
      1,
    )}`,
    `                                  baseline: ${raw(
      starts.baseline.map((x) => x.rssMB),
      1,
    )}`,
    `load  slipway:  ${loads.slipway.requests} requests, ${loads.slipway.errors} errors, ${loads.slipway.non200} non-200, max ${loads.slipway.maxms.toFixed(1)} ms, ${loads.slipway.connections ?? "?"} connections open`,
    `load  baseline: ${loads.baseline.requests} requests, ${loads.baseline.errors} errors, ${loads.baseline.non200} non-200, max ${loads.baseline.maxms.toFixed(1)} ms, ${loads.baseline.connections ?? "?"} connections open`,
    `load generator: ${CONCURRENCY} fetch loops in the bench process (shares the CPUs with the server), 127.0.0.1 only`,
    ...(badExits.length > 0
      ? [`note: ${badExits.length} start(s) did not exit 0 on SIGTERM (${badExits.join(", ")})`]
      : []),
    `total bench time ${totalS.toFixed(1)} s`,
  ];
  process.stdout.write(`${out.join("\n")}\n`);
}

try {
  await main();
} catch (e) {
  progress(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
