/**
 * @module test/e2e/builder-image
 * The `dockerd` builder image, for real: assembled with debootstrap (or reused from the test
 * cache, see test/support/builder-image.ts), run with the fallback security profile this machine
 * allows, with its socket and data root bound from host directories. BuildKit answers
 * ListWorkers through the `/grpc` h2c upgrade on the bound socket; a real build with RUN steps
 * works (with network, and a cache mount that persists); a restarted builder comes back; and
 * `slipway builder-image import` loads a `docker save` tarball.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import {
  builderImageHealthCheck,
  builderImageServiceFactory,
  doctorBuilderImageCheck,
  recipeHash,
  type BuilderImageService,
} from "../../src/builders/image/index.ts";
import { IMAGE_ENTRYPOINT } from "../../src/builders/image/recipe.ts";
import { run } from "../../src/host/run.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { slipwayBinary } from "../support/binary.ts";
import {
  BUILDER_IMAGE_TIMEOUT_MS,
  builderImageMissing,
  docker,
  ensureDockerdBuilderImage,
  startDockerdBuilder,
  waitForBuildKit,
  writeBusyboxContext,
  type EnsuredImage,
  type RunningBuilder,
  dockerdMissing,
  busyboxMissing,
} from "../support/builder-image.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway } from "../support/serve.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-builder-image-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The Debian docker CLI (20.10) does BuildKit builds with DOCKER_BUILDKIT=1 and no buildx plugin. */
function dockerCli(): string | null {
  for (const p of ["/usr/bin/docker", "/usr/local/bin/docker"]) {
    try {
      statSync(p);
      return p;
    } catch {}
  }
  return null;
}

const missing =
  (await builderImageMissing("bookworm")) ??
  (dockerCli() ? null : "no docker CLI (apt-get install docker.io)") ??
  busyboxMissing();

integrationSuite("dockerd builder image (debootstrap, fallback profile, /grpc)", missing, () => {
  let image: EnsuredImage;
  let svc: BuilderImageService;
  let builder: RunningBuilder;

  beforeAll(async () => {
    image = await ensureDockerdBuilderImage({ suite: "bookworm" });
    console.log(
      `  builder image ${image.ref} ${image.id.slice(0, 19)}: from ${image.source} in ${image.seconds.toFixed(1)} s`,
    );
    svc = builderImageServiceFactory({ docker: docker(), log: silentLogger });
    builder = await startDockerdBuilder(image.ref, join(work, "b1"));
    console.log(
      `  builder ${builder.name}: container start → ListWorkers answered in ${builder.readyMs.toFixed(0)} ms`,
    );
  }, BUILDER_IMAGE_TIMEOUT_MS);

  afterAll(async () => {
    await builder?.stop();
  });

  const dockerd = (path: string) =>
    fetch(`http://docker${path}`, { unix: builder.socketPath }).then(
      (r) => r.json() as Promise<Record<string, unknown>>,
    );

  test("the image carries the entrypoint, the runtime label and the recipe hash", async () => {
    const state = await svc.inspect(image.ref);
    expect(state).toMatchObject({
      present: true,
      id: image.id,
      runtime: "dockerd",
      suite: "bookworm",
      recipe: recipeHash("bookworm"),
    });
    const info = await docker().getImage(image.ref).inspect();
    expect(info.Config.Entrypoint).toEqual([...IMAGE_ENTRYPOINT]);
    expect(info.Config.Volumes).toHaveProperty("/var/lib/docker");
  });

  test("doctor and /readyz report the configured runtime, image and presence", async () => {
    const ok = await doctorBuilderImageCheck(svc, { runtime: "dockerd", image: image.ref });
    expect(ok.status).toBe("ok");
    expect(ok.message).toContain(image.ref);
    expect(ok.message).toContain("runtime dockerd");
    const absent = `slipway/builder-dockerd:absent-${crypto.randomUUID().slice(0, 8)}`;
    const health = await builderImageHealthCheck(svc, { runtime: "dockerd", image: absent }).run();
    expect(health.status).toBe("warn");
    expect(health.observedValue).toBe(false);
    expect(health.output).toContain("slipway builder-image build");
  });

  test("BuildKit answers ListWorkers through the /grpc h2c upgrade on the bound socket", async () => {
    expect(builder.workers.length).toBeGreaterThan(0);
    expect(builder.workers[0]!.id.length).toBeGreaterThan(0);
    expect(builder.workers[0]!.platforms).toContain("linux/amd64");
    // Only a unix socket: root-owned, group-only, in the bound directory.
    const st = statSync(builder.socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.uid).toBe(0);
    expect(st.gid).toBe(0);
    const info = await dockerd("/info");
    // The data root is a bind mount of a host directory, so overlay2 works there.
    expect(info.Driver).toBe("overlay2");
    expect(info.DockerRootDir).toBe("/var/lib/docker");
    console.log(`  nested dockerd ${info.ServerVersion}, storage ${info.Driver}, cgroup v${info.CgroupVersion}`);
  });

  test("a real build: RUN steps run, reach the network, and a cache mount persists across builds", async () => {
    // RUN steps get a bridge network behind the builder's own: they reach a server on the host.
    const server = Bun.serve({ hostname: "0.0.0.0", port: 0, fetch: () => new Response("hello from the host\n") });
    try {
      const net = (await docker().getContainer(builder.id).inspect()).NetworkSettings;
      const gateway = Object.values(net.Networks ?? {})[0]?.Gateway;
      expect(gateway).toBeTruthy();
      const ctx = join(work, "ctx");
      writeBusyboxContext(
        ctx,
        [
          "ARG RUN_ID=1",
          `RUN --mount=type=cache,target=/cache echo "run $RUN_ID" >> /cache/log && echo "cache-lines $(wc -l < /cache/log)"`,
          `RUN (printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'; sleep 1) | nc ${gateway} ${server.port} | tail -1`,
        ].join("\n"),
      );
      const build = (extra: string[]) =>
        run([dockerCli()!, "build", "--progress=plain", ...extra, "-t", "slipway-test/built:1", ctx], {
          env: { DOCKER_HOST: `unix://${builder.socketPath}`, DOCKER_BUILDKIT: "1" },
          timeoutMs: 120_000,
        });
      const t0 = performance.now();
      const first = await build([]);
      const firstMs = performance.now() - t0;
      expect(first.stderr + first.stdout).toContain("cache-lines 1");
      expect(first.code).toBe(0);
      expect(first.stderr).toContain("hello from the host");
      const t1 = performance.now();
      const cached = await build([]);
      expect(cached.code).toBe(0);
      expect(cached.stderr).toMatch(/CACHED/);
      // A changed build arg re-runs the step; the cache mount still holds the first run's line.
      const second = await build(["--build-arg", "RUN_ID=2"]);
      expect(second.code).toBe(0);
      expect(second.stderr).toContain("cache-lines 2");
      console.log(
        `  build with RUN steps: ${firstMs.toFixed(0)} ms first, ${(performance.now() - t1).toFixed(0)} ms for a cached rebuild plus one re-running the cache-mount step`,
      );
      const images = (await fetch("http://docker/images/json", { unix: builder.socketPath }).then((r) => r.json())) as {
        RepoTags: string[] | null;
      }[];
      expect(images.some((i) => i.RepoTags?.includes("slipway-test/built:1"))).toBe(true);
    } finally {
      server.stop(true);
    }
  }, 300_000);

  test("a restarted builder comes back (stale pid files) with its data root intact", async () => {
    const c = docker().getContainer(builder.id);
    await c.restart({ t: 5 });
    const workers = await waitForBuildKit(builder.socketPath);
    expect(workers.length).toBeGreaterThan(0);
    const images = (await fetch("http://docker/images/json", { unix: builder.socketPath }).then((r) => r.json())) as {
      RepoTags: string[] | null;
    }[];
    expect(images.some((i) => i.RepoTags?.includes("slipway-test/built:1"))).toBe(true);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------

const dockerMissing = await dockerdMissing();

integrationSuite("builder-image import (a docker save tarball)", dockerMissing ?? busyboxMissing(), () => {
  const suffix = crypto.randomUUID().slice(0, 8);
  const ref = `slipway-test/import-${suffix}:v1`;
  let tarball: string;

  beforeAll(async () => {
    // A small image made here (nothing can be pulled), saved, then removed from the engine.
    const d = docker();
    const rootTar = join(work, `busybox-root-${suffix}.tar`);
    const root = join(work, `busybox-root-${suffix}`);
    writeBusyboxContext(root, "");
    expect((await run(["tar", "-C", root, "-cf", rootTar, "busybox"])).code).toBe(0);
    const [repo, tag] = ref.split(":");
    const stream = await d.importImage(rootTar, { repo, tag } as Record<string, unknown>);
    await new Promise((r, j) => d.modem.followProgress(stream, (e: Error | null) => (e ? j(e) : r(null))));
    tarball = join(work, `saved-${suffix}.tar`);
    await pipeline(await d.getImage(ref).get(), createWriteStream(tarball));
    await d.getImage(ref).remove({ force: true });
  });

  afterAll(async () => {
    await docker()
      .getImage(ref)
      .remove({ force: true })
      .catch(() => {});
  });

  test("the service loads it and the image is then present", async () => {
    const svc = builderImageServiceFactory({ docker: docker(), log: silentLogger });
    expect((await svc.inspect(ref)).present).toBe(false);
    const loaded = await svc.importTarball(tarball);
    expect(loaded.images.map((i) => i.ref)).toEqual([ref]);
    const state = await svc.inspect(ref);
    expect(state.present).toBe(true);
    expect(loaded.images[0]!.id).toBe(state.id!);
  });

  test("`slipway builder-image import FILE` prints the loaded reference and id", async () => {
    await docker()
      .getImage(ref)
      .remove({ force: true })
      .catch(() => {});
    const r = await runSlipway(slipwayBinary(), ["builder-image", "import", "--no-verify", tarball]);
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    const [printedRef, printedId] = r.stdout.trim().split(/\s+/);
    expect(printedRef).toBe(ref);
    expect(printedId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await docker().getImage(ref).inspect()).Id).toBe(printedId!);
  }, 120_000);

  test("a file that is not an image tarball fails with a clear message, exit 1", async () => {
    const bogus = join(work, "bogus.tar");
    writeFileSync(bogus, "not a tarball");
    const r = await runSlipway(slipwayBinary(), ["builder-image", "import", "--no-verify", bogus]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^slipway: .*(load|tar)/m);
    expect(r.stderr).not.toContain("internal error");
    const gone = await runSlipway(slipwayBinary(), ["builder-image", "import", join(work, "nope.tar")]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("no such file");
  }, 120_000);
});

describe("builder-image build refuses clearly without root", () => {
  test("a non-root uid gets a PreconditionError naming root and the alternative", async () => {
    const svc = builderImageServiceFactory({ docker: docker(), log: silentLogger, uid: 1000 });
    await expect(svc.build({ mirror: "http://deb.debian.org/debian" })).rejects.toThrow(
      /needs root.*sudo.*builder-image import/s,
    );
  });
});
