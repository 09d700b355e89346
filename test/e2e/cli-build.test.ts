/**
 * @module test/e2e/cli-build
 * `slipway build` and `slipway buildkit-env`, the compiled binary, against `serve` whose public
 * URL is an IP address (so the build endpoint's server name is one too), with real builders
 * (the trixie `dockerd` image with the containerd image store: it has the image exporters).
 *
 * Shows: `buildkit-env -- CMD` in a script, CMD being docker-buildx on a remote-driver builder
 * at $BUILDKIT_HOST running a real build, its exit code passed through; a project named as
 * ORG/NAME by --project, SLIPWAY_PROJECT, slipway.json and the depot CLI, while a foreign or
 * missing ORG/NAME answers exactly like a missing id; `--load` putting a runnable image into the
 * local Docker; every `slipway build` flag the README lists, and clear errors for bad ones.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Docker from "dockerode";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { which } from "../../src/host/run.ts";
import { findBuildkitClient } from "../../src/cli/client/build-session.ts";
import { slipwayBinary } from "../support/binary.ts";
import { DEPOT, depotEnv } from "../support/depot.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { pushingServeArgs, startPlainRegistry, type PlainRegistry } from "../support/plain-registry.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT})`
  : findBuildkitClient(process.env)?.kind !== "buildx" || !which("docker")
    ? "docker-buildx and the docker CLI are needed (.ci/run installs Debian trixie's docker-buildx)"
    : !which("docker-registry")
      ? "docker-registry is not installed (apt-get install docker-registry)"
      : await builderImageMissing("trixie");

const LOADED_IMAGE = `slipway-load-test:${process.pid}`;

integrationSuite("slipway build and buildkit-env against serve with an IP public URL", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-cli-build-"));
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  let s: Served;
  let server = "";
  let admin = "";
  let registry: PlainRegistry | null = null;
  let regPort = 0;
  const ids: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const home = join(work, "home");

  const api = async (token: string, method: string, path: string, body?: unknown) => {
    const r = await s.get(path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return {
      status: r.status,
      json: text && r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : null,
      text,
    };
  };
  const run = async (argv: string[], env: Record<string, string> = {}, cwd?: string) => {
    const p = Bun.spawn(argv, {
      cwd,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "", HOME: home, ...env },
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, stdout, stderr, log: stdout + stderr };
  };
  /** `slipway <args>` against the server as `token` (the administrator's by default). */
  const slipway = (args: string[], opts: { token?: string; env?: Record<string, string>; cwd?: string } = {}) =>
    // The globals right after the command: whatever follows `--` is CMD's.
    run(
      [slipwayBinary(), args[0]!, "--server", server, "--cacert", join(s.dataDir, "ca.pem"), ...args.slice(1)],
      { SLIPWAY_TOKEN: opts.token ?? admin, ...opts.env },
      opts.cwd,
    );
  const build = (args: string[], opts: Parameters<typeof slipway>[1] = {}) =>
    slipway(["build", "--progress", "plain", ...args], opts);
  const latestBuild = async (project: string) =>
    (await api(admin, "GET", `/api/v1/projects/${project}/builds?limit=1`)).json.builds[0];
  const context = (name: string, body: string) => {
    const dir = join(work, name);
    writeBusyboxContext(dir, body);
    return dir;
  };

  beforeAll(async () => {
    const image = await ensureDockerdBuilderImage({ suite: "trixie" });
    mkdirSync(home, { recursive: true });
    registry = await startPlainRegistry(work);
    regPort = registry.port;
    s = await serve(slipwayBinary(), join(work, "data"), pushingServeArgs(image.ref), {}, { publicHost: "127.0.0.1" });
    server = `https://127.0.0.1:${new URL(s.url).port}`;
    admin = readFileSync(join(s.dataDir, "initial-admin-token"), "utf8").trim();
    expect((await api(admin, "POST", "/api/v1/orgs", { slug: "acme", name: "Acme", owner: "admin" })).status).toBe(201);
    expect((await api(admin, "POST", "/api/v1/orgs", { slug: "rival", name: "Rival", owner: "admin" })).status).toBe(
      201,
    );
    ids.web = (await api(admin, "POST", "/api/v1/orgs/acme/projects", { name: "web" })).json.id;
    ids.rival = (await api(admin, "POST", "/api/v1/orgs/rival/projects", { name: "app" })).json.id;
    for (const p of ["web", "rival"])
      tokens[p] = (
        await api(admin, "POST", "/api/v1/tokens", { kind: "project", name: `ci-${p}`, project: ids[p] })
      ).json.token;
  }, 20 * 60_000);

  afterAll(async () => {
    await s?.stop();
    registry?.stop();
    await removeBuildersOf(Object.values(ids), docker);
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    await docker
      .getImage(LOADED_IMAGE)
      .remove({ force: true })
      .catch(() => {});
    rmSync(work, { recursive: true, force: true });
  });

  describe("buildkit-env", () => {
    test("-- CMD in a script: docker-buildx on $BUILDKIT_HOST runs a real build; the build ends with CMD and its exit code is CMD's", async () => {
      const ctx = context("env-ctx", "RUN echo built-through-buildkit-env > /proof.txt");
      const out = join(work, "env-out");
      const script = [
        "set -e",
        'docker buildx create --name "envb" --driver remote "$BUILDKIT_HOST" >/dev/null',
        `docker buildx build --builder envb --progress plain --output type=local,dest=${out} ${ctx}`,
      ].join("\n");
      const env = { BUILDX_CONFIG: join(work, "buildx-config") };
      const r = await slipway(["buildkit-env", "--project", "acme/web", "--", "sh", "-c", script], { env });
      expect(r.code, r.log).toBe(0);
      expect(readFileSync(join(out, "proof.txt"), "utf8")).toBe("built-through-buildkit-env\n");
      expect(r.log).not.toContain("ServerName");
      const b = await latestBuild(ids.web!);
      expect(b.status).toBe("finished");
      const steps = (await api(admin, "GET", `/api/v1/builds/${b.id}/steps`)).json as { name: string }[];
      expect(steps.some((x) => x.name.includes("echo built-through-buildkit-env"))).toBe(true);

      // CMD's exit code is the command's; the build records the failure.
      const failed = await slipway(["buildkit-env", "--project", "acme/web", "--", "sh", "-c", "exit 3"]);
      expect(failed.code).toBe(3);
      const fb = await latestBuild(ids.web!);
      expect(fb.status).toBe("failed");
      expect(fb.error).toContain("sh exited with 3");
      const notFound = await slipway(["buildkit-env", "--project", "acme/web", "--", "no-such-command-here"]);
      expect(notFound.code).toBe(127);
      expect(notFound.stderr.trim().split("\n").at(-1)).toBe(
        "slipway: cannot run no-such-command-here: command not found",
      );
      expect((await latestBuild(ids.web!)).status).toBe("failed");
    }, 600_000);

    test("without CMD: prints BUILDKIT_HOST and holds the build until SIGINT, with the IP server name", async () => {
      const p = Bun.spawn(
        [
          slipwayBinary(),
          "buildkit-env",
          "--server",
          server,
          "--cacert",
          join(s.dataDir, "ca.pem"),
          "--project",
          ids.web!,
        ],
        {
          stdout: "pipe",
          stderr: "pipe",
          env: { PATH: process.env.PATH ?? "", HOME: home, SLIPWAY_TOKEN: admin },
        },
      );
      const reader = p.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const host = /^export BUILDKIT_HOST=(tcp:\/\/127\.0\.0\.1:\d+)$/m.exec(text)?.[1];
      expect(host).toBeTruthy();
      const b = await latestBuild(ids.web!);
      expect(b.status).toBe("running");
      // A real client through the forwarder: buildx inspects the builder at BUILDKIT_HOST.
      const env = { BUILDX_CONFIG: join(work, "buildx-config-2") };
      expect((await run(["docker", "buildx", "create", "--name", "held", "--driver", "remote", host!], env)).code).toBe(
        0,
      );
      const inspect = await run(["docker", "buildx", "inspect", "--bootstrap", "held"], env);
      expect(inspect.code, inspect.log).toBe(0);
      expect(inspect.stdout).toMatch(/Status:\s+running/);
      p.kill("SIGINT");
      expect(await p.exited).toBe(0);
      const stderr = await new Response(p.stderr).text();
      expect(stderr).not.toContain("    at ");
      expect((await api(admin, "GET", `/api/v1/builds/${b.id}`)).json.status).toBe("finished");
    }, 300_000);
  });

  describe("projects named as ORG/NAME", () => {
    test("--project, SLIPWAY_PROJECT and slipway.json with acme/web build on that project, for the administrator and a project token", async () => {
      const ctx = context("named", "RUN echo named-project");
      const byFlag = await build(["--project", "acme/web", ctx]);
      expect(byFlag.code, byFlag.log).toBe(0);
      expect((await latestBuild(ids.web!)).status).toBe("finished");
      const before = (await latestBuild(ids.web!)).id;
      const byEnv = await build([ctx], { token: tokens.web, env: { SLIPWAY_PROJECT: "acme/web" } });
      expect(byEnv.code, byEnv.log).toBe(0);
      const viaEnv = await latestBuild(ids.web!);
      expect(viaEnv.id).not.toBe(before);
      expect(viaEnv.started_by).toMatch(/^token:/);
      writeFileSync(join(ctx, "slipway.json"), JSON.stringify({ id: "acme/web" }));
      const byFile = await build([ctx]);
      expect(byFile.code, byFile.log).toBe(0);
      expect((await latestBuild(ids.web!)).id).not.toBe(viaEnv.id);
      rmSync(join(ctx, "slipway.json"));
    }, 600_000);

    test("the depot CLI: depot build --project acme/web", async () => {
      const ctx = context("named-depot", "RUN echo named-by-depot\nRUN echo after-the-first");
      const before = (await latestBuild(ids.web!))?.id;
      const r = await run(
        [DEPOT, "build", "--project", "acme/web", "--progress", "plain", ctx],
        depotEnv({ url: server, dataDir: s.dataDir }, home, admin),
      );
      expect(r.code, r.log).toBe(0);
      const b = await latestBuild(ids.web!);
      expect(b.id).not.toBe(before);
      expect(b.status).toBe("finished");
      const steps = (await api(admin, "GET", `/api/v1/builds/${b.id}/steps`)).json as {
        name: string;
        completed_at: string | null;
      }[];
      expect(steps.find((x) => x.name.includes("echo after-the-first"))?.completed_at).toBeTruthy();
    }, 600_000);

    test("a foreign or missing ORG/NAME answers exactly like a missing project id, and creates nothing", async () => {
      const ctx = context("named-refused", "RUN echo never");
      const answer = async (project: string, token: string) => {
        const r = await build(["--project", project, ctx], { token });
        return { code: r.code, last: r.stderr.trim().split("\n").at(-1) };
      };
      const missingId = await answer("prj_doesnotexist", tokens.rival!);
      expect(missingId).toEqual({ code: 1, last: "slipway: not_found: no such project" });
      const before = (await latestBuild(ids.web!)).id;
      expect(await answer("acme/web", tokens.rival!)).toEqual(missingId); // another tenant's
      expect(await answer(ids.web!, tokens.rival!)).toEqual(missingId);
      expect(await answer("acme/nope", admin)).toEqual(missingId);
      expect(await answer("nope/web", admin)).toEqual(missingId);
      expect((await latestBuild(ids.web!)).id).toBe(before);
      const malformed = await build(["--project", "acme/web/x", ctx]);
      expect(malformed.code).toBe(2);
      expect(malformed.stderr).toContain("expected a project id or ORG/NAME");
    }, 120_000);
  });

  test("--load: the image lands in the local Docker and runs", async () => {
    const ctx = context("load", 'RUN echo loaded > /loaded.txt\nENTRYPOINT ["/bin/busybox", "cat", "/loaded.txt"]');
    const r = await build(["--project", "acme/web", "--load", "-t", LOADED_IMAGE, ctx]);
    expect(r.code, r.log).toBe(0);
    const ran = await run(["docker", "run", "--rm", LOADED_IMAGE]);
    expect(ran.code, ran.log).toBe(0);
    expect(ran.stdout).toBe("loaded\n");
    const b = await latestBuild(ids.web!);
    expect(b.status).toBe("finished");
  }, 600_000);

  describe("every flag the README lists for slipway build", () => {
    const multiStage = (dir: string) => {
      writeBusyboxContext(dir, "");
      mkdirSync(join(dir, "docker"), { recursive: true });
      writeFileSync(
        join(dir, "docker", "Build.dockerfile"),
        `${[
          "FROM scratch AS base",
          "COPY busybox /bin/busybox",
          'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
          "ARG GREETING=unset",
          'RUN echo "greeting=$GREETING" > /greeting.txt',
          "FROM base AS final",
          "RUN echo final-stage > /final.txt",
        ].join("\n")}\n`,
      );
      return dir;
    };

    test("-f, --build-arg, --target, --platform, --output, --no-cache", async () => {
      const ctx = multiStage(join(work, "flags"));
      const out = join(work, "flags-out");
      const r = await build([
        "--project",
        "acme/web",
        "-f",
        join(ctx, "docker", "Build.dockerfile"),
        "--build-arg",
        "GREETING=hello",
        "--target",
        "base",
        "--platform",
        "linux/amd64",
        "--output",
        `type=local,dest=${out}`,
        ctx,
      ]);
      expect(r.code, r.log).toBe(0);
      expect(readFileSync(join(out, "greeting.txt"), "utf8")).toBe("greeting=hello\n");
      expect(existsSync(join(out, "final.txt"))).toBe(false); // --target stopped before it
      const first = await latestBuild(ids.web!);
      expect(first.platforms).toEqual(["linux/amd64"]);

      const tarball = join(work, "flags.tar");
      const again = await build([
        "--project",
        "acme/web",
        "-f",
        join(ctx, "docker", "Build.dockerfile"),
        "--build-arg",
        "GREETING=hello",
        "--no-cache",
        "-o",
        `type=tar,dest=${tarball}`,
        ctx,
      ]);
      expect(again.code, again.log).toBe(0);
      expect(new TextDecoder().decode(Bun.spawnSync(["tar", "-xOf", tarball, "final.txt"]).stdout)).toBe(
        "final-stage\n",
      );
      const steps = (await api(admin, "GET", `/api/v1/builds/${(await latestBuild(ids.web!)).id}/steps`)).json as {
        name: string;
        cached: boolean;
      }[];
      const greeting = steps.filter((x) => x.name.includes("greeting="));
      expect(greeting.length).toBeGreaterThan(0);
      expect(greeting.every((x) => !x.cached)).toBe(true); // --no-cache
    }, 600_000);

    test("--push to a registry the builder reaches", async () => {
      const ctx = context("push", "RUN echo pushed > /pushed.txt");
      const c = (
        (await docker.listContainers({ filters: JSON.stringify({ label: [`io.slipway.project=${ids.web}`] }) })) as {
          NetworkSettings: { Networks: Record<string, { NetworkID: string }> };
        }[]
      )[0]!;
      const net = (await docker.getNetwork(Object.values(c.NetworkSettings.Networks)[0]!.NetworkID).inspect()) as {
        IPAM: { Config: { Gateway: string }[] };
      };
      const ref = `${net.IPAM.Config[0]!.Gateway}:${regPort}/acme/web:1`;
      const r = await build(["--project", "acme/web", "-t", ref, "--push", ctx]);
      expect(r.code, r.log).toBe(0);
      const head = await fetch(`http://127.0.0.1:${regPort}/v2/acme/web/manifests/1`, {
        method: "HEAD",
        headers: {
          accept:
            "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json",
        },
      });
      expect(head.status).toBe(200);
    }, 600_000);

    test("bad flags are one clear line with exit 2, before any build is created", async () => {
      const ctx = context("bad-flags", "RUN echo never");
      const before = (await latestBuild(ids.web!)).id;
      for (const [args, message] of [
        [["--platform", "linux/s390x"], "expected linux/amd64 or linux/arm64"],
        [["--progress", "fancy"], "expected auto or plain"],
        [["--bogus"], "Unknown option '--bogus'"],
        [["--build-arg"], "argument missing"],
      ] as [string[], string][]) {
        const r = await build(["--project", "acme/web", ctx, ...args]);
        expect({ args, code: r.code }).toEqual({ args, code: 2 });
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(message);
      }
      const noContext = await build(["--project", "acme/web"]);
      expect(noContext.code).toBe(2);
      expect(noContext.stderr).toContain("build needs exactly one PATH");
      expect((await latestBuild(ids.web!)).id).toBe(before);
    }, 120_000);
  });
});
