/**
 * @module test/bench/cold-start
 * `bun test/bench/cold-start.ts [--runs N] [--suites trixie,bookworm] [--export-mb M]`: where a
 * cold `dockerd` builder's start goes, and how the Debian suites' builder images compare, on the
 * real Docker engine through the builder service (an existing cache volume: the first start
 * makes it and is not counted). Every figure is the median of --runs.
 *
 *   1. Per suite, the cold start in phases, timed by the engine's own events: engine (acquire →
 *      the container's `create` event: volume, network, name, docker create), container start
 *      (`create` → `start` event), BuildKit ready (`start` → ListWorkers answers, the service's
 *      readiness). Baseline: `docker run --rm` of /bin/true from the same image (the engine's
 *      floor for any container), run interleaved.
 *   2. Per suite, the first COPY of a --copy-mb MB context (100 KB files) on a just-started
 *      builder against the same COPY (one file changed) on the same builder once warm, with
 *      `docker buildx build` on the builder's socket: BuildKit's own time for the COPY step
 *      (the client's start-up would drown it), and the build's wall time.
 *   3. Per suite, a small build with a sizable export: a cached step making --export-mb MB,
 *      exported as a tar stream to the client. Baseline: the same build on the first suite.
 * A report: nothing fails on timing.
 */
import Docker from "dockerode";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SUITES, type Suite } from "../../src/builders/image/index.ts";
import { builderServiceFactory } from "../../src/builders/index.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { run } from "../../src/host/run.ts";
import { newId } from "../../src/ids.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { plainVolumeManager } from "../../src/volumes/index.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { builderTableDeps } from "../support/builder-deps.ts";
import { ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    runs: { type: "string", default: "5" },
    suites: { type: "string", default: "trixie,bookworm" },
    "export-mb": { type: "string", default: "200" },
    "copy-mb": { type: "string", default: "50" },
  },
});
const RUNS = intOpt("runs", opts.runs!, 1, 100);
const EXPORT_MB = intOpt("export-mb", opts["export-mb"]!, 1, 4096);
const COPY_MB = intOpt("copy-mb", opts["copy-mb"]!, 1, 4096);
const suites = opts.suites!.split(",").filter((s): s is Suite => (SUITES as readonly string[]).includes(s));
if (suites.length === 0) {
  console.error(`--suites: one or more of ${SUITES.join(", ")}`);
  process.exit(2);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const work = mkdtempSync(join(tmpdir(), "slipway-bench-cold-"));
const rows: Row[] = [];
const notes: string[] = [];
const projects: string[] = [];

/** The engine's `create` and `start` events of containers whose name contains `part`, in epoch ms. */
async function engineEvents(part: string) {
  const seen = new Map<string, { create?: number; start?: number }>();
  const stream = (await docker.getEvents({
    filters: JSON.stringify({ type: ["container"], event: ["create", "start"] }),
  })) as NodeJS.ReadableStream & { destroy(): void };
  let buf = "";
  stream.on("data", (chunk: Buffer) => {
    buf += chunk.toString("utf8");
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const e = JSON.parse(line) as {
          Action: string;
          id: string;
          timeNano: number;
          Actor: { Attributes: { name?: string } };
        };
        if (!e.Actor.Attributes.name?.includes(part)) continue;
        const at = e.timeNano / 1e6;
        const x = seen.get(e.id) ?? {};
        if (e.Action === "create") x.create = at;
        if (e.Action === "start") x.start = at;
        seen.set(e.id, x);
      } catch {
        // a partial line: the rest comes with the next chunk
      }
    }
  });
  return {
    /** The events of the container created after `since` (epoch ms), once both arrived. */
    async after(since: number): Promise<{ create: number; start: number }> {
      for (let i = 0; i < 1000; i++) {
        const x = [...seen.values()].find((e) => e.create !== undefined && e.create >= since && e.start);
        if (x?.create && x.start) return { create: x.create, start: x.start };
        await Bun.sleep(10);
      }
      throw new Error("the engine's create/start events did not arrive");
    },
    close: () => stream.destroy(),
  };
}

/** `docker buildx build` on a builder's dockerd socket: wall time, and BuildKit's time of the step named `step`. */
async function buildx(
  socketPath: string,
  ctx: string,
  args: string[],
  step = "",
): Promise<{ wall: number; step: number }> {
  const t = performance.now();
  const r = await run(["docker", "buildx", "build", "--progress", "plain", ...args, ctx], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: work,
      DOCKER_HOST: `unix://${socketPath}`,
      DOCKER_CONFIG: join(work, "docker-config"),
    },
    timeoutMs: 300_000,
  });
  const wall = performance.now() - t;
  if (r.code !== 0) throw new Error(`docker buildx build failed: ${r.stderr.slice(-800)}`);
  // Plain progress: "#4 [1/1] COPY . /ctx" … "#4 DONE 0.3s".
  const n = step
    ? new RegExp(`^#(\\d+) \\[[^\\]]*\\] ${step.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "m").exec(r.stderr)?.[1]
    : undefined;
  const done = n ? new RegExp(`^#${n} DONE ([0-9.]+)s`, "m").exec(r.stderr)?.[1] : undefined;
  return { wall, step: done ? Number(done) * 1000 : Number.NaN };
}

async function buildkitVersion(socketPath: string): Promise<string> {
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: work,
    DOCKER_HOST: `unix://${socketPath}`,
    DOCKER_CONFIG: join(work, "docker-config"),
  };
  const v = await run(["docker", "version", "--format", "{{.Server.Version}}"], { env });
  const i = await run(["docker", "buildx", "inspect"], { env });
  const bk = /BuildKit(?: version)?:\s*(\S+)/i.exec(i.stdout)?.[1] ?? "?";
  return `dockerd ${v.stdout.trim()}, BuildKit ${bk}`;
}

try {
  const db = openDatabase(join(work, "bench.db"));
  applyMigrations(db);
  const org = newId("org");
  db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, 'bench', ?)").run(
    org,
    `bench-${org.slice(-6)}`,
    new Date().toISOString(),
  );
  const native = (await docker.info()).Architecture === "aarch64" ? "linux/arm64" : "linux/amd64";
  const copyCtx = join(work, "ctx-copy");
  mkdirSync(copyCtx, { recursive: true });
  writeFileSync(join(copyCtx, "Dockerfile"), "FROM scratch\nCOPY . /ctx\n");
  for (let i = 0; i < COPY_MB * 10; i++)
    writeFileSync(join(copyCtx, `f${i}`), crypto.getRandomValues(new Uint8Array(102_400)));
  const exportCtx = join(work, "ctx-export");
  writeBusyboxContext(exportCtx, `RUN dd if=/dev/zero of=/big bs=1M count=${EXPORT_MB} 2>/dev/null`);
  const exportMs = new Map<Suite, number>();

  for (const suite of suites) {
    const image = (await ensureDockerdBuilderImage({ suite })).ref;
    const applianceId = `bench${newId("a").slice(2, 10)}`;
    const project = newId("prj");
    projects.push(project);
    db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES (?, ?, ?, ?)").run(
      project,
      org,
      `cold-${suite}`,
      new Date().toISOString(),
    );
    const m = builderServiceFactory({
      db,
      ...builderTableDeps(db),
      docker,
      volumes: plainVolumeManager({ root: join(work, `volumes-${suite}`) }),
      applianceId,
      dataDir: join(work, suite),
      runtime: "dockerd",
      image,
      log: silentLogger,
    });
    const ref = { projectId: project, platform: native };
    const events = await engineEvents(project.toLowerCase()); // the container is named after its project
    try {
      const first = await m.acquire(ref, "warm-up"); // makes the volume: the runs below start on an existing one
      m.release("warm-up");
      notes.push(`${suite}: ${image}, ${await buildkitVersion(first.socketPath)}`);
      // The context's first upload (all of it) happens here: the runs below send one changed file.
      await buildx(first.socketPath, copyCtx, ["--output", "type=tar,dest=/dev/null"]);
      const phases = { engine: [] as number[], start: [] as number[], ready: [] as number[], total: [] as number[] };
      const floor: number[] = [];
      const copy = { first: [] as number[], warm: [] as number[], firstWall: [] as number[], warmWall: [] as number[] };
      for (let i = 0; i < RUNS; i++) {
        await m.stop(ref, "bench");
        const t0 = Date.now();
        const tp = performance.now();
        const b = await m.acquire(ref, `cold-${i}`);
        const total = performance.now() - tp;
        const ev = await events.after(t0);
        phases.engine.push(ev.create - t0);
        phases.start.push(ev.start - ev.create);
        phases.ready.push(t0 + total - ev.start);
        phases.total.push(total);
        // The first COPY on this fresh builder, then the same on it warm (one file changed each time: no cache hit).
        const out = ["--output", "type=tar,dest=/dev/null"];
        writeFileSync(join(copyCtx, "f0"), `${suite} ${i} first ${crypto.randomUUID()}\n`);
        const first = await buildx(b.socketPath, copyCtx, out, "COPY . /ctx");
        writeFileSync(join(copyCtx, "f0"), `${suite} ${i} warm ${crypto.randomUUID()}\n`);
        const warm = await buildx(b.socketPath, copyCtx, out, "COPY . /ctx");
        copy.first.push(first.step);
        copy.warm.push(warm.step);
        copy.firstWall.push(first.wall);
        copy.warmWall.push(warm.wall);
        m.release(`cold-${i}`);
        const tf = performance.now();
        const r = await run(["docker", "run", "--rm", "--entrypoint", "/bin/true", image]);
        if (r.code !== 0) throw new Error(`docker run failed: ${r.stderr}`);
        floor.push(performance.now() - tf);
        process.stderr.write(".");
      }
      // The export: the step is cached after the first build; each run sends the result again.
      const b = await m.acquire(ref, "export");
      const tarOut = join(work, "out.tar");
      await buildx(b.socketPath, exportCtx, ["--output", `type=tar,dest=${tarOut}`]);
      const exports: number[] = [];
      for (let i = 0; i < RUNS; i++)
        exports.push((await buildx(b.socketPath, exportCtx, ["--output", `type=tar,dest=${tarOut}`])).wall);
      rmSync(tarOut, { force: true });
      m.release("export");
      exportMs.set(suite, median(exports));

      rows.push([`${suite}: engine (acquire → container created)`, median(phases.engine), Number.NaN, "ms", 0]);
      rows.push([`${suite}: container start (created → started)`, median(phases.start), Number.NaN, "ms", 0]);
      rows.push([
        `${suite}: BuildKit ready (started → ListWorkers)`,
        median(phases.ready),
        Number.NaN,
        "ms",
        0,
        { op: "≤", value: 600 },
      ]);
      rows.push([
        `${suite}: cold start total vs docker run --rm /bin/true`,
        median(phases.total),
        median(floor),
        "ms",
        0,
      ]);
      rows.push([
        `${suite}: COPY ${COPY_MB} MB step, fresh builder vs warm`,
        median(copy.first),
        median(copy.warm),
        "ms",
        0,
      ]);
      rows.push([
        `${suite}: that build's wall time, fresh vs warm`,
        median(copy.firstWall),
        median(copy.warmWall),
        "ms",
        0,
      ]);
      await m.stop(ref, "bench done");
    } finally {
      events.close();
      m.close();
    }
  }
  const base = exportMs.get(suites[0]!)!;
  for (const suite of suites)
    rows.push([
      `${suite}: cached build + ${EXPORT_MB} MB tar export vs ${suites[0]}`,
      exportMs.get(suite)!,
      base,
      "ms",
      0,
    ]);
  db.close();

  console.log(`\nslipway cold-start bench: bun ${Bun.version}; median of ${RUNS}; ${(await docker.info()).NCPU} cores`);
  for (const n of notes) console.log(`   ${n}`);
  for (const line of table(["metric", "value", "baseline", "ratio", "target"], rows)) console.log(line);
  console.log(
    "   phases from the engine's create/start events; COPY — BuildKit's own step time (plain progress), right after the start vs again with one file changed",
  );
} finally {
  await removeBuildersOf(projects, docker).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
