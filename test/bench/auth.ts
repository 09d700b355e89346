/**
 * @module test/bench/auth
 * Authentication and authorization cost: a report, not a test. Nothing here fails on timing; the
 * exit code is non-zero only when the bench itself cannot run (a credential does not
 * authenticate, a route does not answer 200).
 *
 * Everything in sections 1 and 2 runs in THIS process on ONE core: Bun runs the JS, the SHA-256
 * and the SQLite lookups of `authenticate` on the one JS thread, so the ops/s below are per core.
 * The appliance is test/support/world.ts (users, organizations A/B, projects, one token of every
 * kind) on a real SQLite file in a temp dir.
 *
 *   1. Token verification per second on the hot path: `authenticate("Bearer <token>")` (awaited)
 *      in a tight loop for --duration seconds after a --warmup, for a user token (with
 *      memberships), a project token, an organization token and an OIDC-exchanged token.
 *      Baseline, measured in the same run (interleaved with them in short slices): the bare work of
 *      the loop — `new Bun.CryptoHasher("sha256").update(token).digest()` plus the same prepared
 *      SQLite lookup by hash that `authenticate` uses, synchronously; and a floor below it: the
 *      same lookup without its project subquery. Also `authorize()` alone.
 *   2. Added latency of authentication + authorization per request, through the real app
 *      in-process (`world.handle(new Request(...))`, body read): GET /livez (no credentials)
 *      against GET /api/v1/projects/<p1> with ownerA's user token and with the project token,
 *      --requests sequential requests each, interleaved, after a warm-up. The project route
 *      also looks the project up and validates and serializes the response, so its difference
 *      to /livez is an upper bound of what authentication + authorization add.
 *   3. Optional (--https): the same comparison over real HTTPS against the compiled binary
 *      (`serve(slipwayBinary(), dataDir)`, or --binary PATH), with a project and a project token
 *      created through the API with the initial administrator token. The client is fetch in this
 *      process over one keep-alive connection; the server is a separate process.
 *
 * Usage: bun test/bench/auth.ts [--json] [--duration 3] [--warmup-ms 500] [--requests 20000]
 *        [--https] [--https-requests 5000] [--binary PATH]
 * Progress goes to stderr; the table (or JSON with --json) to stdout.
 */
import { parseArgs } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { tokensServiceFactory } from "../../src/auth/api-tokens.ts";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import { authServiceFactory } from "../../src/auth/authenticate.ts";
import { egressServiceFactory } from "../../src/egress/service.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { authorize } from "../../src/auth/policy.ts";
import type { Actor } from "../../src/auth/actor.ts";
import { projectsServiceFactory } from "../../src/projects/service.ts";
import { makeWorld, type ActorName, type World } from "../support/world.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    duration: { type: "string", default: "3" },
    "warmup-ms": { type: "string", default: "500" },
    requests: { type: "string", default: "20000" },
    https: { type: "boolean", default: false },
    "https-requests": { type: "string", default: "5000" },
    binary: { type: "string" },
  },
});

const DURATION_MS = intOpt("duration", opts.duration, 1, 30) * 1000;
const WARMUP_MS = intOpt("warmup-ms", opts["warmup-ms"], 0, 10_000);
const REQUESTS = intOpt("requests", opts.requests, 100, 1_000_000);
const HTTPS_REQUESTS = intOpt("https-requests", opts["https-requests"], 100, 1_000_000);
/** Requests per route before the measured ones (JIT, statement caches). */
const REQUEST_WARMUP = Math.min(2000, Math.ceil(REQUESTS / 10));
/** From the issue: token verifications per second on one core. */
const TARGET_VERIFY_PER_S = 20_000;

function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/** Nearest-rank percentile of an ascending-sorted array. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

interface Latency {
  n: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  maxms: number;
  meanms: number;
}

function latency(xs: number[]): Latency {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    p50ms: percentile(s, 50),
    p90ms: percentile(s, 90),
    p99ms: percentile(s, 99),
    maxms: s.at(-1) ?? NaN,
    meanms: s.reduce((a, b) => a + b, 0) / (s.length || 1),
  };
}

// ---------------------------------------------------------------------------------------------
// Section 1: operations per second in a tight loop.

interface Rate {
  ops: number;
  perSecond: number;
  usPerOp: number;
}

/** Checking the clock only every BATCH calls keeps performance.now() out of the figure. */
const BATCH = 64;

function rateOf(ops: number, ms: number): Rate {
  return { ops, perSecond: ops / (ms / 1000), usPerOp: (ms * 1000) / ops };
}

function loopSync(fn: () => unknown, ms: number): Rate {
  const t0 = performance.now();
  const end = t0 + ms;
  let now = t0;
  let n = 0;
  while (now < end) {
    for (let i = 0; i < BATCH; i++) fn();
    n += BATCH;
    now = performance.now();
  }
  return rateOf(n, now - t0);
}

async function loopAsync(fn: () => Promise<unknown>, ms: number): Promise<Rate> {
  const t0 = performance.now();
  const end = t0 + ms;
  let now = t0;
  let n = 0;
  while (now < end) {
    for (let i = 0; i < BATCH; i++) await fn();
    n += BATCH;
    now = performance.now();
  }
  return rateOf(n, now - t0);
}

function measureSync(what: string, fn: () => unknown): Rate {
  loopSync(fn, WARMUP_MS);
  const r = loopSync(fn, DURATION_MS);
  progress(`  ${what}: ${Math.round(r.perSecond)}/s (${r.usPerOp.toFixed(2)} µs/op)`);
  return r;
}

async function measureAsync(what: string, fn: () => Promise<unknown>): Promise<Rate> {
  await loopAsync(fn, WARMUP_MS);
  const r = await loopAsync(fn, DURATION_MS);
  progress(`  ${what}: ${Math.round(r.perSecond)}/s (${r.usPerOp.toFixed(2)} µs/op)`);
  return r;
}

interface Subject {
  name: string;
  /** Runs the loop for about `ms`; returns the operations done and the time taken. */
  run(ms: number): Promise<Rate> | Rate;
}

/** Time slices per subject in a round-robin (SLICE_MS each), so drift hits every subject alike. */
const SLICE_MS = 100;

/**
 * Measures several subjects against each other: each warms up, then they take turns in
 * SLICE_MS slices until each has had DURATION_MS. A machine that slows down (other load, thermal,
 * a growing heap) then slows every subject alike, and the ratios stay meaningful.
 */
async function roundRobin(subjects: Subject[]): Promise<Rate[]> {
  for (const s of subjects) await s.run(WARMUP_MS);
  const ops = subjects.map(() => 0);
  const ms = subjects.map(() => 0);
  const rounds = Math.max(1, Math.round(DURATION_MS / SLICE_MS));
  for (let i = 0; i < rounds; i++) {
    for (let j = 0; j < subjects.length; j++) {
      const r = await subjects[j]!.run(SLICE_MS);
      ops[j]! += r.ops;
      ms[j]! += (r.ops / r.perSecond) * 1000;
    }
  }
  return subjects.map((s, j) => {
    const r = rateOf(ops[j]!, ms[j]!);
    progress(`  ${s.name}: ${Math.round(r.perSecond)}/s (${r.usPerOp.toFixed(2)} µs/op)`);
    return r;
  });
}

const KINDS = [
  { key: "user", actor: "ownerA", label: "user token (ownerA, 1 membership)", expect: "user" },
  { key: "project", actor: "tokA1", label: "project token (tokA1)", expect: "project-token" },
  { key: "org", actor: "orgTokB", label: "organization token (orgTokB)", expect: "org-token" },
  { key: "oidc", actor: "oidcA1", label: "OIDC-exchanged token (oidcA1)", expect: "oidc" },
] as const satisfies readonly { key: string; actor: ActorName; label: string; expect: Actor["kind"] }[];
type KindKey = (typeof KINDS)[number]["key"];

interface Section1 {
  baseline: Rate;
  floor: Rate;
  authenticate: Record<KindKey, Rate>;
  authorizeUser: Rate;
  authorizeProjectToken: Rate;
  authenticateAndAuthorizeUser: Rate;
  projectLookup: Rate;
}

function secretOf(world: World, actor: ActorName): string {
  const s = world.secrets[actor];
  if (!s) throw new Error(`the world has no secret for ${actor}`);
  return s;
}

async function section1(world: World): Promise<Section1> {
  // Its own service instance on the world's database: the same code and statements the app uses.
  const audit = auditServiceFactory({ db: world.db });
  const auth = authServiceFactory({
    tokens: tokensServiceFactory({ db: world.db, audit }),
    users: orgsServiceFactory({ db: world.db, audit }),
    projects: projectsServiceFactory({ db: world.db, audit, orgs: orgsServiceFactory({ db: world.db, audit }) }),
    runnerHosts: egressServiceFactory({ db: world.db, audit, applianceHosts: ["localhost"], extraAllow: [] }),
  });
  const headers = Object.fromEntries(KINDS.map((k) => [k.key, `Bearer ${secretOf(world, k.actor)}`])) as Record<
    KindKey,
    string
  >;
  const actors = {} as Record<KindKey, Actor>;
  for (const k of KINDS) {
    const a = await auth.authenticate(headers[k.key]);
    if (a.kind !== k.expect) throw new Error(`${k.actor} authenticated as ${a.kind}, expected ${k.expect}`);
    actors[k.key] = a;
  }

  // The irreducible work: hash the token, one indexed lookup by hash (authenticate's own SQL).
  const lookup = world.db.query(
    `SELECT t.id, t.kind, t.expires_at, t.revoked_at, t.last_used_at, t.user_id, t.org_id, t.project_id,
            (SELECT p.org_id FROM projects p WHERE p.id = t.project_id) AS project_org_id
       FROM api_tokens t
      WHERE t.secret_sha256 = ?`,
  );
  // A floor below it: the same hash, a single-table lookup by the unique index, no subquery.
  const lookupNoJoin = world.db.query(
    "SELECT id, kind, expires_at, revoked_at, last_used_at, user_id, org_id, project_id FROM api_tokens WHERE secret_sha256 = ?",
  );
  const baselineToken = secretOf(world, "ownerA");
  const baselineFn = () => {
    const row = lookup.get(new Bun.CryptoHasher("sha256").update(baselineToken).digest() as Uint8Array);
    if (!row) throw new Error("baseline lookup found no row");
    return row;
  };
  const floorFn = () => {
    const row = lookupNoJoin.get(new Bun.CryptoHasher("sha256").update(baselineToken).digest() as Uint8Array);
    if (!row) throw new Error("floor lookup found no row");
    return row;
  };

  progress(
    `section 1: ops/s on one core, ${WARMUP_MS} ms warm-up each, then ${DURATION_MS} ms each in ${SLICE_MS} ms round-robin slices`,
  );
  const subjects: Subject[] = [
    { name: "baseline sha256 + lookup by hash (authenticate's SQL)", run: (ms) => loopSync(baselineFn, ms) },
    { name: "floor sha256 + single-table lookup by hash (no subquery)", run: (ms) => loopSync(floorFn, ms) },
    ...KINDS.map((k): Subject => {
      const header = headers[k.key];
      return { name: `authenticate ${k.label}`, run: (ms) => loopAsync(() => auth.authenticate(header), ms) };
    }),
  ];
  const [baseline, floor, ...kindRates] = await roundRobin(subjects);
  const authenticate = Object.fromEntries(KINDS.map((k, i) => [k.key, kindRates[i]!])) as Record<KindKey, Rate>;

  const resource = { orgId: world.ids.A, projectId: world.ids.p1 };
  const userActor = actors.user;
  const projectActor = actors.project;
  const authorizeUser = measureSync("authorize(user ownerA, project:read, p1)", () =>
    authorize(userActor, "project:read", resource),
  );
  const authorizeProjectToken = measureSync("authorize(project token, project:read, p1)", () =>
    authorize(projectActor, "project:read", resource),
  );
  const userHeader = headers.user;
  const authenticateAndAuthorizeUser = await measureAsync("authenticate + authorize, user token", async () => {
    authorize(await auth.authenticate(userHeader), "project:read", resource);
  });
  // For context in section 2: the project route's own lookup, not authentication.
  const projects = projectsServiceFactory({
    db: world.db,
    audit: world.audit,
    orgs: orgsServiceFactory({ db: world.db, audit: world.audit }),
  });
  const p1 = world.ids.p1;
  const projectLookup = measureSync("projects.get(p1) (the route's own lookup)", () => projects.get(p1));

  return {
    baseline: baseline!,
    floor: floor!,
    authenticate,
    authorizeUser,
    authorizeProjectToken,
    authenticateAndAuthorizeUser,
    projectLookup,
  };
}

// ---------------------------------------------------------------------------------------------
// Sections 2 and 3: per-request latency, an unauthenticated route against an authenticated one.

interface Route {
  key: string;
  label: string;
  path: string;
  authorization: string | null;
}

interface RouteLatency extends Latency {
  key: string;
  label: string;
  non200: number;
}

/**
 * Sends `n` requests to each route, one at a time and interleaved (route 1, 2, 3, 1, 2, 3, …)
 * so drift in the machine's state affects every route alike; returns per-route latencies.
 */
async function interleaved(
  routes: Route[],
  n: number,
  warmup: number,
  send: (r: Route) => Promise<Response>,
): Promise<RouteLatency[]> {
  const samples = routes.map(() => [] as number[]);
  const non200 = routes.map(() => 0);
  for (let i = 0; i < warmup + n; i++) {
    for (let j = 0; j < routes.length; j++) {
      const t = performance.now();
      const res = await send(routes[j]!);
      await res.arrayBuffer();
      const ms = performance.now() - t;
      if (res.status !== 200) {
        if (i === 0) throw new Error(`${routes[j]!.label}: HTTP ${res.status}, expected 200`);
        non200[j]!++;
      }
      if (i >= warmup) samples[j]!.push(ms);
    }
  }
  return routes.map((r, j) => ({ key: r.key, label: r.label, non200: non200[j]!, ...latency(samples[j]!) }));
}

function logLatencies(rs: RouteLatency[]): void {
  for (const r of rs)
    progress(
      `  ${r.label}: p50 ${(r.p50ms * 1000).toFixed(1)} µs, p99 ${(r.p99ms * 1000).toFixed(1)} µs, max ${r.maxms.toFixed(2)} ms, non-200 ${r.non200}`,
    );
}

async function section2(world: World): Promise<RouteLatency[]> {
  const routes: Route[] = [
    { key: "livez", label: "GET /livez (no credentials)", path: "/livez", authorization: null },
    {
      key: "user",
      label: "GET /api/v1/projects/p1, user token (ownerA)",
      path: `/api/v1/projects/${world.ids.p1}`,
      authorization: `Bearer ${secretOf(world, "ownerA")}`,
    },
    {
      key: "project",
      label: "GET /api/v1/projects/p1, project token (tokA1)",
      path: `/api/v1/projects/${world.ids.p1}`,
      authorization: `Bearer ${secretOf(world, "tokA1")}`,
    },
  ];
  progress(
    `section 2: in-process app.handle, ${REQUEST_WARMUP} warm-up + ${REQUESTS} sequential requests per route, interleaved`,
  );
  const rs = await interleaved(routes, REQUESTS, REQUEST_WARMUP, (r) =>
    world.handle(
      new Request(`http://localhost${r.path}`, { headers: r.authorization ? { authorization: r.authorization } : {} }),
    ),
  );
  logLatencies(rs);
  return rs;
}

type Section3 = { ran: true; results: RouteLatency[]; binary: string } | { ran: false; reason: string };

async function section3(): Promise<Section3> {
  if (!opts.https) return { ran: false, reason: "not requested (--https)" };
  const { serve } = await import("../support/serve.ts");
  let binary = opts.binary;
  if (!binary) {
    progress("section 3: locating the compiled binary (test/support/binary.ts rebuilds dist/slipway when stale)");
    const { slipwayBinary } = await import("../support/binary.ts");
    try {
      binary = slipwayBinary();
    } catch (e) {
      return { ran: false, reason: `no binary: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` };
    }
  }
  const dataDir = mkdtempSync(join(tmpdir(), "slipway-bench-auth-"));
  let served: Awaited<ReturnType<typeof serve>> | null = null;
  try {
    const { unitEnvironment } = await import("../support/unit-env.ts");
    served = await serve(binary, dataDir, [], unitEnvironment()); // as the packaged unit runs it
    const s = served;
    const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const json = async (method: string, path: string, body: unknown) => {
      const res = await s.get(path, {
        method,
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status !== 201) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    };
    const project = await json("POST", "/api/v1/orgs/default/projects", { name: "bench" });
    const projectId = String(project.id);
    const token = await json("POST", "/api/v1/tokens", { kind: "project", name: "bench", project: projectId });
    const routes: Route[] = [
      { key: "livez", label: "HTTPS GET /livez (no credentials)", path: "/livez", authorization: null },
      {
        key: "admin",
        label: "HTTPS GET /api/v1/projects/:id, admin user token",
        path: `/api/v1/projects/${projectId}`,
        authorization: `Bearer ${admin}`,
      },
      {
        key: "project",
        label: "HTTPS GET /api/v1/projects/:id, project token",
        path: `/api/v1/projects/${projectId}`,
        authorization: `Bearer ${String(token.token)}`,
      },
    ];
    const warmup = Math.min(1000, Math.ceil(HTTPS_REQUESTS / 10));
    progress(
      `section 3: HTTPS against ${binary}, ${warmup} warm-up + ${HTTPS_REQUESTS} sequential keep-alive requests per route, interleaved`,
    );
    const results = await interleaved(routes, HTTPS_REQUESTS, warmup, (r) =>
      s.get(r.path, r.authorization ? { headers: { authorization: r.authorization } } : {}),
    );
    logLatencies(results);
    return { ran: true, results, binary };
  } catch (e) {
    return { ran: false, reason: `failed: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` };
  } finally {
    if (served) await served.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const round2 = (_: string, v: unknown) =>
  typeof v === "number" && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v;

function latencyRows(rs: RouteLatency[], prefix: string): Row[] {
  const base = rs[0]!;
  const rows: Row[] = [];
  for (const r of rs) {
    rows.push(
      [`${prefix}${r.label} p50`, r.p50ms * 1000, base.p50ms * 1000, "µs", 1],
      [`${prefix}${r.label} p99`, r.p99ms * 1000, base.p99ms * 1000, "µs", 1],
    );
  }
  for (const r of rs.slice(1)) {
    rows.push(
      [`${prefix}added by auth (${r.key}) p50 = p50 − /livez p50`, (r.p50ms - base.p50ms) * 1000, NaN, "µs", 1],
      [`${prefix}added by auth (${r.key}) p99 = p99 − /livez p99`, (r.p99ms - base.p99ms) * 1000, NaN, "µs", 1],
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const started = performance.now();
  progress("building the world (test/support/world.ts) on a temp SQLite file");
  const world = await makeWorld();
  let s1: Section1;
  let s2: RouteLatency[];
  try {
    s1 = await section1(world);
    s2 = await section2(world);
  } finally {
    world.close();
  }
  const s3 = await section3();
  const totalS = (performance.now() - started) / 1000;

  const environment = {
    bun: Bun.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    kernel: release(),
    threads: "one JS thread: sections 1 and 2 run on one core",
    durationMs: DURATION_MS,
    warmupMs: WARMUP_MS,
    requests: REQUESTS,
    requestWarmup: REQUEST_WARMUP,
    httpsRequests: opts.https ? HTTPS_REQUESTS : null,
  };

  if (opts.json) {
    const out = {
      environment,
      targets: { verificationsPerSecondPerCore: TARGET_VERIFY_PER_S },
      verification: s1,
      inProcessLatency: s2,
      https: s3,
      totalSeconds: totalS,
    };
    process.stdout.write(`${JSON.stringify(out, round2, 2)}\n`);
    return;
  }

  const base = s1.baseline.perSecond;
  const rows1: Row[] = [
    ["baseline: sha256 + authenticate's lookup by hash", base, base, "/s", 0],
    ["floor: sha256 + lookup by hash, api_tokens only", s1.floor.perSecond, base, "/s", 0],
    ...KINDS.map(
      (k): Row => [
        `authenticate(), ${k.label}`,
        s1.authenticate[k.key].perSecond,
        base,
        "/s",
        0,
        { op: "≥", value: TARGET_VERIFY_PER_S },
      ],
    ),
    [
      "authenticate() + authorize(), user token",
      s1.authenticateAndAuthorizeUser.perSecond,
      base,
      "/s",
      0,
      { op: "≥", value: TARGET_VERIFY_PER_S },
    ],
    ["authorize() alone, user actor on project p1", s1.authorizeUser.perSecond, base, "/s", 0],
    ["authorize() alone, project token on project p1", s1.authorizeProjectToken.perSecond, base, "/s", 0],
    ["projects.get(p1) alone (route work, not auth)", s1.projectLookup.perSecond, base, "/s", 0],
  ];
  const rows2 = latencyRows(s2, "");
  const rows3 = s3.ran ? latencyRows(s3.results, "") : [];

  const us = (r: Rate) => `${r.usPerOp.toFixed(2)} µs`;
  const out = [
    `slipway auth bench: bun ${environment.bun}, ${environment.cpus} × ${environment.cpu}, linux ${environment.kernel}`,
    `sections 1-2 run in this process on ONE core (one JS thread: SHA-256 and SQLite run on it synchronously); SQLite is a real file`,
    "",
    `1. token verification, ops/s on one core (${WARMUP_MS} ms warm-up + ${DURATION_MS / 1000} s each)`,
    ...table(["metric", "value", "baseline", "ratio", "target"], rows1),
    "",
    `   baseline = sha256(token) + the prepared lookup by hash (authenticate's own SQL, with its project subquery), synchronous;`,
    "   floor = api_tokens alone (same unique index, no subquery); ratio = value / baseline",
    `   baseline, floor and the four authenticate() rows take turns in ${SLICE_MS} ms slices (round-robin), so machine drift hits them alike;`,
    "   authenticate() is awaited (it is async), the baseline is not: the await is part of the hot path's cost",
    `   µs per op: baseline ${s1.baseline.usPerOp.toFixed(2)}, floor ${s1.floor.usPerOp.toFixed(2)}, ${KINDS.map((k) => `${k.key} ${us(s1.authenticate[k.key])}`).join(", ")}, authorize(user) ${us(s1.authorizeUser)}`,
    "",
    `2. per-request latency through the real app, in-process (world.handle), ${REQUESTS} sequential requests per route, interleaved, after ${REQUEST_WARMUP} each`,
    ...table(["metric", "value", "/livez", "ratio", ""], rows2),
    "",
    "   'added' is an upper bound of authentication + authorization: the project route also runs projects.get (see section 1) and",
    "   validates and serializes its response; /livez answers a constant string",
    ...s2.map(
      (r) =>
        `   ${r.label}: max ${r.maxms.toFixed(2)} ms, mean ${(r.meanms * 1000).toFixed(1)} µs, non-200 ${r.non200}`,
    ),
    "",
    `3. OPTIONAL: over real HTTPS against the compiled binary (separate process; client = fetch in this process, one keep-alive connection)`,
    ...(s3.ran
      ? [
          `   binary ${s3.binary}, ${HTTPS_REQUESTS} sequential requests per route, interleaved`,
          ...table(["metric", "value", "/livez", "ratio", ""], rows3),
          ...s3.results.map((r) => `   ${r.label}: max ${r.maxms.toFixed(2)} ms, non-200 ${r.non200}`),
          "   the admin token is an administrator's user token (authorize short-circuits for administrators; memberships are still loaded)",
        ]
      : [`   skipped: ${s3.reason}`]),
    "",
    `total bench time ${totalS.toFixed(1)} s`,
  ];
  process.stdout.write(`${out.join("\n")}\n`);
}

try {
  await main();
} catch (e) {
  progress(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
