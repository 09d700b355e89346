/**
 * @module test/bench/images
 * `bun test/bench/images.ts`: an image of about 200 MB leaving the builder into the client's
 * Docker with `depot build --load` (the unchanged depot CLI against the compiled `serve`, the
 * default trixie builder), against `docker load` of the same image as a tarball in the same run.
 *
 *   load      `depot build --load` of an already built (all steps cached) image, image removed
 *             from the client's Docker before each run: admission + export + transfer + load;
 *   floor     `depot build` of the same, with no output: admission + the cached solve;
 *   baseline  `docker load -i` of `docker save` of the same image, image removed before each run.
 * The load's own cost is load − floor. A report: nothing fails on timing.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, slipwayBinary } from "../support/binary.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { serve } from "../support/serve.ts";
import { unitEnvironment } from "../support/unit-env.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: "string", default: "3" }, mb: { type: "string", default: "200" } },
});
const RUNS = intOpt("runs", opts.runs!, 1, 20);
const MB = intOpt("mb", opts.mb!, 1, 2000);

const DEPOT = join(ROOT, "node_modules", "@depot", "cli-linux-x64", "bin", "depot");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function sh(argv: string[], env?: Record<string, string>) {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", ...(env ? { env } : {}) });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}:\n${(out + err).slice(-2000)}`);
  return out;
}
async function timed(argv: string[], env?: Record<string, string>): Promise<number> {
  const t = performance.now();
  await sh(argv, env);
  return performance.now() - t;
}

const work = mkdtempSync(join(tmpdir(), "slipway-bench-images-"));
const tag = `slipway-bench-load:${crypto.randomUUID().slice(0, 8)}`;
let project = "";
const served = await serve(
  slipwayBinary(),
  join(work, "data"),
  [
    "--set",
    `builders.dockerd_image=${(await ensureDockerdBuilderImage({ suite: "trixie" })).ref}`,
    "--set",
    "volumes.encryption=none",
  ],
  unitEnvironment(), // as the packaged slipway.service runs it
  { publicHost: "localhost" },
);
try {
  const admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
  const post = async (path: string, body: unknown) =>
    (
      await served.get(path, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      })
    ).json() as Promise<Record<string, string>>;
  project = (await post("/api/v1/orgs/default/projects", { name: "bench-images" })).id!;
  const token = (await post("/api/v1/tokens", { kind: "project", name: "bench", project })).token!;
  const ctx = join(work, "ctx");
  writeBusyboxContext(ctx, `COPY big.bin /big.bin\nENTRYPOINT ["/bin/busybox", "true"]`);
  writeFileSync(join(ctx, "big.bin"), randomBytes(MB * 1024 * 1024)); // incompressible
  mkdirSync(join(work, "home"));
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: join(work, "home"),
    DEPOT_API_URL: served.url,
    DEPOT_TOKEN: token,
    SSL_CERT_FILE: join(served.dataDir, "ca.pem"),
    DEPOT_NO_UPDATE_NOTIFIER: "1",
    DEPOT_DISABLE_OTEL: "1",
    DEPOT_ERROR_TELEMETRY: "0",
    DOCKER_API_VERSION: (await sh(["docker", "version", "--format", "{{.Server.APIVersion}}"])).trim(),
  };
  const depot = (...args: string[]) => [DEPOT, "build", "--project", project, "--progress", "plain", ...args, ctx];
  process.stderr.write(`building the ${MB} MB image once…\n`);
  await sh(depot("--load", "-t", tag), env); // every later run is all cached
  const tarball = join(work, "image.tar");
  await sh(["docker", "save", "-o", tarball, tag]);
  const load: number[] = [];
  const floor: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await sh(["docker", "image", "rm", "-f", tag]);
    load.push(await timed(depot("--load", "-t", tag), env));
    floor.push(await timed(depot(), env));
    await sh(["docker", "image", "rm", "-f", tag]);
    baseline.push(await timed(["docker", "load", "-i", tarball]));
    process.stderr.write(".");
  }
  process.stderr.write("\n");
  const rows: Row[] = [
    [`depot build --load, ${MB} MB image, cached (median of ${RUNS})`, median(load), median(baseline), "ms", 0],
    [
      "  of which the load (minus a cached build with no output)",
      median(load) - median(floor),
      median(baseline),
      "ms",
      0,
    ],
    ["  a cached build with no output (the floor)", median(floor), NaN, "ms", 0],
  ];
  console.log(`\nimages: --load into the client's Docker; baseline: docker load -i of the same image (${MB} MB)`);
  for (const line of table(["metric", "value", "docker load", "ratio", ""], rows)) console.log(line);
} finally {
  await served.stop();
  await removeBuildersOf([project]);
  await sh(["docker", "image", "rm", "-f", tag]).catch(() => {});
  rmSync(work, { recursive: true, force: true });
}
