/**
 * @module test/bench/admission
 * One build admission as the depot CLI does it (CreateBuild, GetBuildKitConnection until
 * active, FinishBuild), over a served appliance: shared by the builds bench and the wire bench's
 * before/after comparison so both time exactly the same calls.
 *
 * `admissionRows` is the builds bench's section 3: admissions at 1 and 32 concurrent clients
 * against GET /livez at the same concurrency, and what puts them in proportion: the server's CPU
 * per admission (its event loop's, and all threads', from /proc) against three authenticated
 * calls that do next to nothing (GetBuild). With closed-loop clients on one event loop, the p50
 * at 32 clients is about 32 × the event loop's CPU per admission. The machine's CPU per admission
 * (the server's and the clients', who share its cores) bounds the mean from below for a server of
 * any shape: the last row.
 *
 * `bun test/bench/admission.ts [--requests 200] [--binary PATH]` runs that section alone, on the
 * compiled binary (or the one at PATH: another commit's build, for a before/after on one machine).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { intOpt, table, type Row } from "./report.ts";

/** POST a JSON body with a bearer token; `get` is the served appliance's fetch. */
export type Post = (token: string, path: string, body: unknown) => Promise<Response>;

export function jsonPoster(get: (path: string, init: RequestInit) => Promise<Response>): Post {
  return (token, path, body) =>
    get(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
}

/** A bench project (names are unique in an organization) and a project token for it, made by the administrator. */
export async function benchProject(
  post: Post,
  admin: string,
  name = "bench",
): Promise<{ projectId: string; token: string }> {
  const proj = (await (await post(admin, "/api/v1/orgs/default/projects", { name })).json()) as {
    id: string;
  };
  const created = (await (await post(admin, "/api/v1/tokens", { kind: "project", name, project: proj.id })).json()) as {
    token: string;
  };
  return { projectId: proj.id, token: created.token };
}

/** Times one admission in ms (create → active); the build is finished after the clock stops. */
export function admitter(post: Post, token: string, projectId: string): () => Promise<number> {
  return async () => {
    const t = performance.now();
    const c = (await (await post(token, "/depot.cli.v1.BuildService/CreateBuild", { projectId })).json()) as {
      buildId: string;
      buildToken: string;
    };
    for (;;) {
      const r = (await (
        await post(c.buildToken, "/depot.cli.v1.BuildService/GetBuildKitConnection", {
          buildId: c.buildId,
          platform: "BUILDER_PLATFORM_AMD64",
        })
      ).json()) as { active?: unknown; pending?: { waitMs: number } };
      if (r.active) break;
      await Bun.sleep(r.pending?.waitMs ?? 100);
    }
    const ms = performance.now() - t;
    await post(c.buildToken, "/depot.cli.v1.BuildService/FinishBuild", { buildId: c.buildId, success: {} });
    return ms;
  };
}

/** Three authenticated Connect calls that do next to no work (GetBuild of a finished build with
 * its token): what any admission's three calls cost in HTTPS, Connect and token checks alone. */
export function connectFloor(post: Post, build: { buildId: string; buildToken: string }): () => Promise<number> {
  return async () => {
    const t = performance.now();
    for (let i = 0; i < 3; i++)
      await (await post(build.buildToken, "/depot.cli.v1.BuildService/GetBuild", { buildId: build.buildId })).text();
    return performance.now() - t;
  };
}

/** A build made and finished, for connectFloor. */
export async function finishedBuild(post: Post, token: string, projectId: string) {
  const c = (await (await post(token, "/depot.cli.v1.BuildService/CreateBuild", { projectId })).json()) as {
    buildId: string;
    buildToken: string;
  };
  await post(c.buildToken, "/depot.cli.v1.BuildService/FinishBuild", { buildId: c.buildId, success: {} });
  return c;
}

/** CPU time a process has used so far, in ms: all its threads, and its main thread (the event
 * loop) alone, from /proc (Linux). */
export function cpuTime(pid: number): { process: number; mainThread: number } {
  // utime and stime are fields 14 and 15 of /proc/PID/stat, counted after the command's ")".
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  // schedstat's first field: nanoseconds on a CPU, exact where the ticks are 10 ms steps.
  const mainNs = Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]);
  return { process: ticks * (1000 / CLOCK_TICKS), mainThread: mainNs / 1e6 };
}

/** USER_HZ: 100 on every Linux this runs on (the kernel's ABI fixes it for /proc). */
const CLOCK_TICKS = 100;

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/** Section 3 of the builds bench, on a served appliance whose builder for the project is warm. */
export async function admissionRows(o: {
  get: (path: string) => Promise<Response>;
  /** The serving process, for its CPU time. */
  pid: number;
  post: Post;
  token: string;
  projectId: string;
  /** Admissions (and baseline calls) per concurrency. */
  requests: number;
}): Promise<Row[]> {
  const rows: Row[] = [];
  const admit = admitter(o.post, o.token, o.projectId);
  const floor = connectFloor(o.post, await finishedBuild(o.post, o.token, o.projectId));
  const livez = async () => {
    const t = performance.now();
    await (await o.get("/livez")).text();
    return performance.now() - t;
  };
  for (const conc of [1, 32]) {
    const measure = async (fn: () => Promise<number>) => {
      const out: number[] = [];
      let left = o.requests;
      await Promise.all(
        Array.from({ length: conc }, async () => {
          while (left-- > 0) out.push(await fn());
        }),
      );
      return out;
    };
    await measure(livez); // this concurrency's connections made
    const a0 = cpuTime(o.pid);
    const ac0 = clientCpu();
    const at0 = performance.now();
    const a = await measure(admit); // each FinishBuild included: admitter awaits it
    const aWall = performance.now() - at0;
    const ac1 = clientCpu();
    const a1 = cpuTime(o.pid);
    const l = await measure(livez);
    const f0 = cpuTime(o.pid);
    const fc0 = clientCpu();
    const f = await measure(floor);
    const fc1 = clientCpu();
    const f1 = cpuTime(o.pid);
    const per = (x: number, y: number) => (y - x) / o.requests;
    // The whole machine's CPU per admission: the server's (all threads) and these clients' own.
    const machine = per(a0.process, a1.process) + per(ac0, ac1);
    const machineFloor = per(f0.process, f1.process) + per(fc0, fc1);
    rows.push(
      [
        `admission p50, ${conc} concurrent (create → active)`,
        pct(a, 50),
        pct(l, 50),
        "ms",
        2,
        { op: "≤", value: conc === 32 ? 10 : 5 },
      ],
      [
        `admission p99, ${conc} concurrent`,
        pct(a, 99),
        pct(l, 99),
        "ms",
        2,
        conc === 32 ? { op: "≤", value: 25 } : undefined,
      ],
      [`  admission p50 vs 3 authenticated GetBuild calls, ${conc} concurrent`, pct(a, 50), pct(f, 50), "ms", 2],
      [
        `  server CPU per admission, event loop, vs 3 GetBuild calls (${conc} concurrent)`,
        per(a0.mainThread, a1.mainThread),
        per(f0.mainThread, f1.mainThread),
        "ms",
        3,
      ],
      [
        `  server CPU per admission, all threads, vs 3 GetBuild calls (${conc} concurrent)`,
        per(a0.process, a1.process),
        per(f0.process, f1.process),
        "ms",
        2,
      ],
      [
        `  machine CPU per admission (server, all threads, + these clients), vs 3 GetBuild calls (${conc} concurrent)`,
        machine,
        machineFloor,
        "ms",
        2,
      ],
    );
    if (conc > 1) {
      // Closed-loop clients on a CPU-bound machine: each client's cycle (create → active, then
      // FinishBuild) lasts at least conc × the machine's CPU per admission ÷ its cores, however the
      // server spreads its work; create → active is its measured share of the cycle. The bound
      // against its counterpart for the three no-op calls, as if an admission cost only those.
      const mean = a.reduce((x, y) => x + y, 0) / o.requests;
      const share = mean / ((aWall * conc) / o.requests);
      const cores = availableParallelism();
      rows.push(
        [`  admission mean, ${conc} concurrent, vs GET /livez`, mean, l.reduce((x, y) => x + y, 0) / l.length, "ms", 2],
        [
          `  least mean create → active any server could reach here: ${conc} × machine CPU ÷ ${cores} cores × ${share.toFixed(2)} (share of the cycle)`,
          ((conc * machine) / cores) * share,
          ((conc * machineFloor) / cores) * share,
          "ms",
          2,
        ],
      );
    }
  }
  return rows;
}

/** This process's CPU time so far (user + system, all threads), in ms: the bench's clients. */
function clientCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: { requests: { type: "string", default: "200" }, binary: { type: "string" } },
  });
  const requests = intOpt("requests", values.requests!, 32, 10_000);
  const { slipwayBinary } = await import("../support/binary.ts");
  const { serve } = await import("../support/serve.ts");
  const { removeBuildersOf } = await import("../support/builder-cleanup.ts");
  const { ensureDockerdBuilderImage } = await import("../support/builder-image.ts");
  const { unitEnvironment } = await import("../support/unit-env.ts");
  const image = (await ensureDockerdBuilderImage()).ref;
  const work = mkdtempSync(join(tmpdir(), "slipway-bench-admission-"));
  let projectId = "";
  try {
    const s = await serve(
      values.binary ?? slipwayBinary(),
      join(work, "data"),
      ["--set", `builders.dockerd_image=${image}`, "--set", "volumes.encryption=none"],
      unitEnvironment(), // as the packaged slipway.service runs it
      { publicHost: "localhost" },
    );
    try {
      const admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
      const post = jsonPoster(s.get);
      const bench = await benchProject(post, admin);
      projectId = bench.projectId;
      await admitter(post, bench.token, projectId)(); // starts the builder: admissions below are on a warm one
      const rows = await admissionRows({ get: s.get, pid: s.proc.pid, post, requests, ...bench });
      console.log(`\nslipway admission bench: bun ${Bun.version}`);
      for (const line of table(["metric", "slipway", "baseline", "ratio", "target"], rows)) console.log(line);
      console.log("   baselines: GET /livez at the same concurrency; three authenticated GetBuild calls");
    } finally {
      await s.stop();
      await removeBuildersOf([projectId]);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
