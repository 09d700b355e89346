/**
 * @module test/bench/registry
 * `bun test/bench/registry.ts`: delivering a ~200 MB image (a context with a 200 MB random file)
 * through the appliance's registry, with the compiled serve, a trixie dockerd builder
 * (containerd image store) and the unchanged depot CLI, against `docker load` of the same image
 * as a `docker save` tarball, measured in the same run.
 *
 * "Build finished → image in the client's Docker" is measured as the time of a command on a warm
 * cache minus the time of the same build with no output on that cache (CreateBuild, connection,
 * cached solve: what every build pays), so what remains is export, push and pull:
 *   1. `depot build --load -t IMAGE` (load_using_registry: push to the registry, docker pull);
 *   2. `depot build --save` then `depot pull <build id>`, on a second context (nothing of it in
 *      the registry yet);
 *   baseline: `docker load -i` of the image saved with `docker save`.
 * A report: nothing fails on timing.
 */
import Docker from "dockerode";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, slipwayBinary } from "../support/binary.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { serve, type Served } from "../support/serve.ts";
import { unitEnvironment } from "../support/unit-env.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({ args: Bun.argv.slice(2), options: { mb: { type: "string", default: "200" } } });
const MB = intOpt("mb", opts.mb!, 1, 4096);
const DEPOT = join(ROOT, "node_modules", "@depot", "cli-linux-x64", "bin", "depot");
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
const work = mkdtempSync(join(tmpdir(), "slipway-bench-registry-"));
const image = (await ensureDockerdBuilderImage({ suite: "trixie" })).ref;
let s: Served | null = null;
let project = "";

const run = async (argv: string[], env: Record<string, string> = {}) => {
  const t0 = performance.now();
  const p = Bun.spawn(argv, {
    stdout: "pipe",
    stderr: "pipe",
    env: {
      PATH: process.env.PATH ?? "",
      HOME: work,
      DOCKER_CONFIG: join(work, "docker"),
      DOCKER_API_VERSION: "1.41",
      ...env,
    },
  });
  const [o, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (${code}):\n${(o + e).slice(-3000)}`);
  return { seconds, out: o + e };
};

function context(name: string): string {
  const dir = join(work, name);
  writeBusyboxContext(dir, `COPY payload /payload\nENTRYPOINT ["/bin/busybox", "wc", "-c", "/payload"]`);
  const payload = new Uint8Array(MB * 1024 * 1024);
  for (let i = 0; i < payload.length; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));
  writeFileSync(join(dir, "payload"), payload);
  return dir;
}

try {
  s = await serve(
    slipwayBinary(),
    join(work, "data"),
    [
      "--set",
      `builders.dockerd_image=${image}`,
      "--set",
      "builders.dockerd_containerd_store=true",
      "--set",
      "volumes.encryption=none",
    ],
    unitEnvironment(), // as the packaged slipway.service runs it
    { publicHost: "localhost", listenHost: "0.0.0.0" },
  );
  const served = s;
  const admin = readFileSync(join(served.dataDir, "initial-admin-token"), "utf8").trim();
  const post = async (path: string, body: unknown) =>
    (
      await served.get(path, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      })
    ).json() as Promise<Record<string, string>>;
  project = (await post("/api/v1/orgs/default/projects", { name: "bench-registry" })).id!;
  const token = (await post("/api/v1/tokens", { kind: "project", name: "bench", project })).token!;
  const depotEnv = {
    DEPOT_API_URL: served.url,
    DEPOT_TOKEN: token,
    SSL_CERT_FILE: join(served.dataDir, "ca.pem"),
    DEPOT_NO_UPDATE_NOTIFIER: "1",
    DEPOT_DISABLE_OTEL: "1",
    DEPOT_ERROR_TELEMETRY: "0",
  };
  const depot = (args: string[]) => run([DEPOT, ...args], depotEnv);
  const build = (ctx: string, extra: string[] = []) =>
    depot(["build", "--project", project, "--progress", "plain", ...extra, ctx]);

  // 1. --load through the registry.
  const ctxLoad = context("ctx-load");
  console.error(`building a ${MB} MB context (cold) ...`);
  const cold = await build(ctxLoad);
  const warmA = await build(ctxLoad);
  console.error("--load through the registry ...");
  const load = await build(ctxLoad, ["--load", "-t", "slipway-bench/registry:load"]);
  // Where the time goes: BuildKit's export and push steps, and the pull, as the CLI reports them.
  const steps = (out: string) =>
    out
      .split("\n")
      .filter(
        (l) =>
          /(exporting layers|pushing layers|exporting manifest|pushing manifest|pulling|DONE \d)/.test(l) &&
          /\d+\.\d+s/.test(l),
      );
  console.error(steps(load.out).join("\n"));

  // 2. --save, then depot pull, on a second context.
  const ctxSave = context("ctx-save");
  await build(ctxSave);
  const warmB = await build(ctxSave);
  console.error("--save, then depot pull ...");
  const save = await build(ctxSave, ["--save"]);
  const builds = (await (
    await served.get(`/api/v1/projects/${project}/builds`, { headers: { authorization: `Bearer ${admin}` } })
  ).json()) as { builds: { id: string }[] };
  const pull = await depot([
    "pull",
    "--project",
    project,
    "--progress",
    "plain",
    "-t",
    "slipway-bench/registry:saved",
    builds.builds[0]!.id,
  ]);

  // Baseline: docker load of the same image as a docker save tarball.
  const tar = join(work, "image.tar");
  await run(["docker", "save", "-o", tar, "slipway-bench/registry:load"]);
  const id = ((await docker.getImage("slipway-bench/registry:load").inspect()) as { Id: string }).Id;
  await run(["docker", "rmi", "-f", id]);
  const dockerLoad = await run(["docker", "load", "-i", tar]);

  const loadDelivery = load.seconds - warmA.seconds;
  const saveDelivery = save.seconds - warmB.seconds + pull.seconds;
  const rows: Row[] = [
    [`--load via registry, build finished → image in Docker (${MB} MB)`, loadDelivery, dockerLoad.seconds, "s", 1],
    [`--save + depot pull, build finished → image in Docker (${MB} MB)`, saveDelivery, dockerLoad.seconds, "s", 1],
    ["  of which depot pull", pull.seconds, dockerLoad.seconds, "s", 1],
    ["cached build with no output (subtracted)", (warmA.seconds + warmB.seconds) / 2, Number.NaN, "s", 1],
    [`cold build of the ${MB} MB context (for scale)`, cold.seconds, Number.NaN, "s", 1],
  ];
  console.log(table(["registry", "slipway", "docker load", "ratio", ""], rows).join("\n"));
} finally {
  await s?.stop();
  for (const ref of ["slipway-bench/registry:load", "slipway-bench/registry:saved"])
    await docker
      .getImage(ref)
      .remove({ force: true })
      .catch(() => {});
  for (const i of (await docker
    .listImages({ filters: JSON.stringify({ reference: ["localhost:*/*"] }) })
    .catch(() => [])) as { Id: string; RepoTags?: string[] }[]) {
    if (i.RepoTags?.some((t) => t.includes(`/${project}:`)))
      await docker
        .getImage(i.Id)
        .remove({ force: true })
        .catch(() => {});
  }
  if (project) await removeBuildersOf([project], docker);
  rmSync(work, { recursive: true, force: true });
}
