/**
 * @module test/e2e/images.test
 * Images leave the builder on the default setup: the compiled `serve` on the default builder
 * (Debian trixie's dockerd with containerd's image store), the unchanged depot CLI. `--load`
 * puts a runnable image into the client's Docker (no image pulled from anywhere), for `depot
 * build` and `depot bake` of two targets; `-o type=docker` and `-o type=oci` write tarballs that
 * `docker load` and `skopeo inspect` accept. And on a bookworm builder, which has no image
 * exporters, the same `--load` is refused at CreateBuild with the settings that fix it (no build
 * is created) instead of failing late or succeeding silently.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { which } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
import { DEPOT, depotEnv } from "../support/depot.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT})`
  : !which("docker")
    ? "no docker CLI (apt-get install docker.io)"
    : !which("skopeo")
      ? "skopeo is not installed (apt-get install skopeo)"
      : ((await builderImageMissing("trixie")) ?? (await builderImageMissing("bookworm")));

/** Runs a command; its exit code and everything it printed. */
async function run(argv: string[], env?: Record<string, string>, cwd?: string) {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", ...(env ? { env } : {}), ...(cwd ? { cwd } : {}) });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, log: out + err };
}

integrationSuite(
  "images out of the builder: --load, bake --load, type=docker and type=oci with the depot CLI",
  missing,
  () => {
    const work = mkdtempSync(join(tmpdir(), "slipway-images-"));
    const suffix = crypto.randomUUID().slice(0, 8);
    const images: string[] = [];
    const projects: string[] = [];
    let s: Served;
    let old: Served;
    let project = "";
    let token = "";
    let dockerApi = "";

    // The depot CLI speaks Docker API 1.44 without negotiating; Debian bookworm's docker.io 20.10
    // answers 1.41 at most, so the client names the engine's version (as the README tells users).
    const depot = (args: string[], srv = s, tok = token, cwd?: string) =>
      run([DEPOT, ...args], depotEnv(srv, join(work, "home"), tok, { DOCKER_API_VERSION: dockerApi }), cwd);
    const setUp = async (srv: Served, name: string) => {
      const admin = readFileSync(join(srv.dataDir, "initial-admin-token"), "utf8").trim();
      const post = async (path: string, body: unknown) =>
        (
          await srv.get(path, {
            method: "POST",
            headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
            body: JSON.stringify(body),
          })
        ).json() as Promise<Record<string, string>>;
      const id = (await post("/api/v1/orgs/default/projects", { name })).id!;
      projects.push(id);
      return { id, token: (await post("/api/v1/tokens", { kind: "project", name: "ci", project: id })).token!, admin };
    };
    /** A context whose image prints `word` when run: the entrypoint is the static busybox. */
    const context = (name: string, word: string) => {
      const dir = join(work, name);
      writeBusyboxContext(dir, `RUN echo ${word} > /proof.txt\nENTRYPOINT ["/bin/busybox", "cat", "/proof.txt"]`);
      return dir;
    };
    const tag = (name: string) => {
      const t = `slipway-test-${name}:${suffix}`;
      images.push(t);
      return t;
    };

    beforeAll(async () => {
      mkdirSync(join(work, "home"), { recursive: true });
      dockerApi = (await run(["docker", "version", "--format", "{{.Server.APIVersion}}"])).out.trim();
      const trixie = await ensureDockerdBuilderImage({ suite: "trixie" });
      // Only the image is named: the containerd store and everything else are the defaults.
      s = await serve(
        slipwayBinary(),
        join(work, "data"),
        ["--set", `builders.dockerd_image=${trixie.ref}`, "--set", "volumes.encryption=none"],
        {},
        { publicHost: "localhost" },
      );
      ({ id: project, token } = await setUp(s, "images"));
    }, 20 * 60_000);

    afterAll(async () => {
      await s?.stop();
      await old?.stop();
      await removeBuildersOf(projects);
      await removeBuildersOfServed(); // and any builder whose project id this file never learned
      for (const i of images) await run(["docker", "image", "rm", "-f", i]);
      rmSync(work, { recursive: true, force: true });
    });

    test("depot build --load: the image is in the client's Docker and runs", async () => {
      const t = tag("load");
      const built = await depot([
        "build",
        "--project",
        project,
        "--progress",
        "plain",
        "--load",
        "-t",
        t,
        context("load", "loaded-by-slipway"),
      ]);
      expect(built.code, built.log).toBe(0);
      const ran = await run(["docker", "run", "--rm", t]);
      expect(ran.code, ran.log).toBe(0);
      expect(ran.out).toBe("loaded-by-slipway\n");
    }, 600_000);

    test("-o type=docker: a tarball docker load accepts; -o type=oci: one skopeo inspects", async () => {
      const ctx = context("tars", "exported-by-slipway");
      const t = tag("docker-tar");
      const dockerTar = join(work, "image-docker.tar");
      const d = await depot([
        "build",
        "--project",
        project,
        "--progress",
        "plain",
        "-t",
        t,
        "-o",
        `type=docker,dest=${dockerTar}`,
        ctx,
      ]);
      expect(d.code, d.log).toBe(0);
      const loaded = await run(["docker", "load", "-i", dockerTar]);
      expect(loaded.code, loaded.log).toBe(0);
      expect(loaded.out).toContain(t);
      expect((await run(["docker", "run", "--rm", t])).out).toBe("exported-by-slipway\n");

      const ociTar = join(work, "image-oci.tar");
      const o = await depot([
        "build",
        "--project",
        project,
        "--progress",
        "plain",
        "-o",
        `type=oci,dest=${ociTar}`,
        ctx,
      ]);
      expect(o.code, o.log).toBe(0);
      const inspected = await run(["skopeo", "inspect", `oci-archive:${ociTar}`]);
      expect(inspected.code, inspected.log).toBe(0);
      const info = JSON.parse(inspected.out) as { Architecture: string; Os: string; Layers: string[] };
      expect(info).toMatchObject({ Architecture: "amd64", Os: "linux" });
      expect(info.Layers.length).toBeGreaterThan(0);
    }, 600_000);

    test("depot bake --load of two targets: both images run", async () => {
      const dir = join(work, "bake");
      context(join("bake", "a"), "bake-target-a");
      context(join("bake", "b"), "bake-target-b");
      const [ta, tb] = [tag("bake-a"), tag("bake-b")];
      writeFileSync(
        join(dir, "docker-bake.hcl"),
        `group "default" {\n  targets = ["a", "b"]\n}\ntarget "a" {\n  context = "a"\n  tags = ["${ta}"]\n}\ntarget "b" {\n  context = "b"\n  tags = ["${tb}"]\n}\n`,
      );
      const baked = await depot(
        ["bake", "--project", project, "--progress", "plain", "--load", "-f", join(dir, "docker-bake.hcl")],
        s,
        token,
        dir,
      );
      expect(baked.code, baked.log).toBe(0);
      expect((await run(["docker", "run", "--rm", ta])).out).toBe("bake-target-a\n");
      expect((await run(["docker", "run", "--rm", tb])).out).toBe("bake-target-b\n");
    }, 600_000);

    test(
      "a bookworm builder: --load and type=oci are refused at CreateBuild with the fix; type=local still builds",
      async () => {
        const bookworm = await ensureDockerdBuilderImage({ suite: "bookworm" });
        old = await serve(
          slipwayBinary(),
          join(work, "data-bookworm"),
          ["--set", `builders.dockerd_image=${bookworm.ref}`, "--set", "volumes.encryption=none"],
          {},
          { publicHost: "localhost" },
        );
        const p = await setUp(old, "old-builder");
        const ctx = context("old", "never-built");
        for (const args of [
          ["--load", "-t", tag("refused")],
          ["-o", `type=oci,dest=${join(work, "refused.tar")}`],
        ]) {
          const refused = await depot(["build", "--project", p.id, "--progress", "plain", ...args, ctx], old, p.token);
          expect(refused.code).not.toBe(0);
          expect(refused.log).toContain("not available on this appliance's builders");
          expect(refused.log).toContain("builder-image build --suite trixie");
        }
        // (The depot CLI opens a dest file before it asks for a build: an empty one may stay behind.)
        if (existsSync(join(work, "refused.tar"))) expect(statSync(join(work, "refused.tar")).size).toBe(0);
        const listed = (await (
          await old.get(`/api/v1/projects/${p.id}/builds`, { headers: { authorization: `Bearer ${p.admin}` } })
        ).json()) as { builds: unknown[] };
        expect(listed.builds).toHaveLength(0); // refused before anything was made
        const local = await depot(
          ["build", "--project", p.id, "--progress", "plain", "-o", `type=local,dest=${join(work, "old-out")}`, ctx],
          old,
          p.token,
        );
        expect(local.code, local.log).toBe(0);
        expect(readFileSync(join(work, "old-out", "proof.txt"), "utf8")).toBe("never-built\n");
      },
      20 * 60_000,
    );
  },
);
