/**
 * @module test/e2e/registry.test
 * The appliance's own registry end to end: the compiled serve runs Debian's docker-registry behind
 * its HTTPS listener and is its token service; the depot CLI (unchanged) builds on a trixie
 * dockerd builder (containerd image store: BuildKit's image exporter) that pushes to it by the
 * builders' name for the appliance; the host's dockerd pulls from `localhost:<port>` (Docker
 * treats 127.0.0.0/8 registries as insecure, so it does not verify the appliance CA here).
 *
 * - `depot build --save`, `depot pull <build id>`, `docker run` of the pulled image;
 * - `depot build --load` through the registry (load_using_registry) and `docker run`;
 * - `depot pull-token` with `docker login`/`docker pull`; that token cannot push; another
 *   project's token is refused on pull and push exactly like a missing repository;
 * - `--push` with the client's own docker-config credentials, passed through the session;
 * - retention 0 plus GC: the saved image is gone and the registry's disk is freed.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { which } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
import { DEPOT, depotEnv, finished } from "../support/depot.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { run } from "../../src/host/run.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT})`
  : !which("docker-registry")
    ? "docker-registry is not installed (apt-get install docker-registry)"
    : !which("docker")
      ? "the docker CLI is not installed (apt-get install docker.io)"
      : !existsSync("/bin/busybox") && !existsSync("/usr/bin/busybox")
        ? "busybox-static is not installed"
        : await builderImageMissing("trixie");

export function dirBytes(dir: string): number {
  let total = 0;
  if (!existsSync(dir)) return 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : e.isFile() ? statSync(p).size : 0;
  }
  return total;
}

integrationSuite("the appliance's registry: --save, depot pull, --load, pull tokens, retention", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-registry-"));
  const dockerConfig = join(work, "docker-config");
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const images: string[] = [];
  let s: Served;
  let admin = "";
  let projectA = "";
  let projectB = "";
  let tokenA = "";
  let tokenB = "";
  let host = ""; // localhost:<port>
  let savedBuild = "";

  // The depot CLI's Docker client speaks API 1.44; Debian bookworm's dockerd 20.10 stops at 1.41.
  const env = (token: string) => depotEnv(s, work, token, { DOCKER_CONFIG: dockerConfig, DOCKER_API_VERSION: "1.41" });
  const runCmd = async (argv: string[], token = tokenA, stdin?: string) => {
    const p = Bun.spawn(argv, {
      stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
      stdout: "pipe",
      stderr: "pipe",
      env: env(token),
    });
    const [o, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out: o, log: o + e };
  };
  const depot = (args: string[], token = tokenA) => runCmd([DEPOT, ...args], token);
  const dockerCli = (args: string[], stdin?: string) => runCmd(["docker", ...args], tokenA, stdin);
  const api = async (path: string, init: { method?: string; body?: unknown; token?: string } = {}) => {
    const r = await s.get(path, {
      method: init.method ?? (init.body ? "POST" : "GET"),
      headers: { authorization: `Bearer ${init.token ?? admin}`, "content-type": "application/json" },
      ...(init.body ? { body: JSON.stringify(init.body) } : {}),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    const image = await ensureDockerdBuilderImage({ suite: "trixie" });
    mkdirSync(dockerConfig, { recursive: true });
    s = await serve(
      slipwayBinary(),
      join(work, "data"),
      [
        "--set",
        `builders.dockerd_image=${image.ref}`,
        "--set",
        "builders.dockerd_containerd_store=true",
        "--set",
        "volumes.encryption=none",
      ],
      {},
      // Builders reach serve on their network's gateway: it must listen beyond loopback.
      { publicHost: "localhost", listenHost: "0.0.0.0" },
    );
    host = new URL(s.url).host;
    admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
    projectA = (await api("/api/v1/orgs/default/projects", { body: { name: "saved" } })).body.id as string;
    projectB = (await api("/api/v1/orgs/default/projects", { body: { name: "other" } })).body.id as string;
    tokenA = (await api("/api/v1/tokens", { body: { kind: "project", name: "ci-a", project: projectA } })).body
      .token as string;
    tokenB = (await api("/api/v1/tokens", { body: { kind: "project", name: "ci-b", project: projectB } })).body
      .token as string;
  }, 20 * 60_000);

  afterAll(async () => {
    await s?.stop();
    for (const i of images)
      await docker
        .getImage(i)
        .remove({ force: true })
        .catch(() => {});
    // What --load pulled by the registry's name (the CLI keeps it).
    for (const i of (await docker
      .listImages({ filters: JSON.stringify({ reference: [`${host}/*`] }) })
      .catch(() => [])) as { Id: string }[])
      await docker
        .getImage(i.Id)
        .remove({ force: true })
        .catch(() => {});
    await removeBuildersOf([projectA, projectB], docker);
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    rmSync(work, { recursive: true, force: true });
  });

  test("/readyz says the registry runs and how builders and clients reach it", async () => {
    const ready = (await (await s.get("/readyz")).json()) as {
      checks: Record<string, { status: string; output: string }[]>;
    };
    expect(ready.checks["registry:running"]![0]!.status).toBe("pass");
    expect(ready.checks["registry:running"]![0]!.output).toContain(`clients pull from ${host}`);
  });

  test("the token realm is the host each request came in on; the builders' alias gets the public one", async () => {
    const port = new URL(s.url).port;
    const realm = async (url: string, headers: Record<string, string> = {}) =>
      (await fetch(url, { headers, tls: { ca: s.ca } })).headers.get("www-authenticate");
    expect(await realm(`https://localhost:${port}/v2/`)).toBe(
      `Bearer realm="https://localhost:${port}/registry/token",service="slipway-registry"`,
    );
    expect(await realm(`https://127.0.0.1:${port}/v2/`)).toContain(`realm="https://127.0.0.1:${port}/registry/token"`);
    expect(await realm(`https://127.0.0.1:${port}/v2/`, { host: `registry.slipway.internal:${port}` })).toContain(
      `realm="https://localhost:${port}/registry/token"`,
    );
    // A Host that is no plain host[:port] never reaches the header (the server may refuse it outright).
    expect((await realm(`https://127.0.0.1:${port}/v2/`, { host: 'evil"host' })) ?? "").not.toContain("evil");
  });

  test("depot build --save, then depot pull <build id>, then docker run prints the image's output", async () => {
    const ctx = join(work, "ctx-save");
    writeBusyboxContext(ctx, 'ENTRYPOINT ["/bin/busybox", "echo", "saved-by-slipway"]');
    const built = await depot([
      "build",
      "--project",
      projectA,
      "--progress",
      "plain",
      "--save",
      "--save-tag",
      "release",
      ctx,
    ]);
    expect(built.code, built.log).toBe(0);
    expect(built.log).toContain("pushing manifest");
    const builds = (await api(`/api/v1/projects/${projectA}/builds`)).body.builds as { id: string }[];
    savedBuild = builds[0]!.id;

    const usage = (await api(`/api/v1/projects/${projectA}/registry`)).body as {
      images: { tags: string[]; build_id: string; bytes: number }[];
      retention_days: number;
    };
    expect(usage.retention_days).toBe(7);
    expect(usage.images).toHaveLength(1);
    console.log(`saved image: ${JSON.stringify(usage.images[0])}`);
    expect(usage.images[0]!.tags.sort()).toEqual([savedBuild, "release"].sort());
    expect(usage.images[0]!.build_id).toBe(savedBuild);
    expect(usage.images[0]!.bytes).toBeGreaterThan(500_000); // busybox

    const tag = `slipway-registry-test/saved:${savedBuild}`;
    images.push(tag, `${host}/${projectA}:${savedBuild}`);
    const pulled = await depot(["pull", "--project", projectA, "--progress", "plain", "-t", tag, savedBuild]);
    expect(pulled.code, pulled.log).toBe(0);
    const ran = await dockerCli(["run", "--rm", tag]);
    expect(ran.code, ran.log).toBe(0);
    expect(ran.out.trim()).toBe("saved-by-slipway");
  }, 600_000);

  test("depot build --load goes through the registry: the image is in the host's Docker and runs", async () => {
    const ctx = join(work, "ctx-load");
    writeBusyboxContext(ctx, 'ENTRYPOINT ["/bin/busybox", "echo", "loaded-through-the-registry"]');
    const tag = "slipway-registry-test/loaded:1";
    images.push(tag);
    const built = await depot(["build", "--project", projectA, "--progress", "plain", "--load", "-t", tag, ctx]);
    expect(built.code, built.log).toBe(0);
    expect(built.log).not.toContain("fast load failed");
    expect(built.log).not.toContain("sending tarball"); // not BuildKit's docker exporter: the registry
    expect(built.log).toContain("pushing manifest");
    const ran = await dockerCli(["run", "--rm", tag]);
    expect(ran.code, ran.log).toBe(0);
    expect(ran.out.trim()).toBe("loaded-through-the-registry");
  }, 600_000);

  test("depot pull-token logs docker in: pull works, push does not; another project's token is refused like a missing repository", async () => {
    expect(savedBuild).not.toBe("");
    const pt = await depot(["pull-token", "--project", projectA]);
    expect(pt.code, pt.log).toBe(0);
    const pullToken = pt.out.trim();
    expect(pullToken).toStartWith("slw_r_");

    const login = await dockerCli(["login", host, "-u", "x-token", "--password-stdin"], pullToken);
    expect(login.code, login.log).toBe(0);
    const ref = `${host}/${projectA}:release`;
    images.push(ref);
    const pulled = await dockerCli(["pull", ref]);
    expect(pulled.code, pulled.log).toBe(0);
    expect((await dockerCli(["run", "--rm", ref])).out.trim()).toBe("saved-by-slipway");

    // Read-only: the same token cannot push, not even to its own project.
    const own = `${host}/${projectA}:pushed-with-a-pull-token`;
    images.push(own);
    expect((await dockerCli(["tag", ref, own])).code).toBe(0);
    const ownPush = await dockerCli(["push", own]);
    expect(ownPush.code).not.toBe(0);
    expect(ownPush.log).toMatch(/unauthorized|denied/);

    // Project B's token: project A's repository answers exactly like one that does not exist.
    const loginB = await dockerCli(["login", host, "-u", "x-token", "--password-stdin"], tokenB);
    expect(loginB.code, loginB.log).toBe(0);
    const ghost = "prj_aaaaaaaaaaaaaaaaaaaa";
    const answer = (r: { log: string }, repo: string) =>
      r.log
        .replaceAll(repo, "REPO")
        .replace(/[0-9a-f]{12}: .*\n/g, "")
        .trim()
        .split("\n")
        .pop();
    const foreignPull = await dockerCli(["pull", `${host}/${projectA}:release`]);
    const ghostPull = await dockerCli(["pull", `${host}/${ghost}:release`]);
    expect(foreignPull.code).not.toBe(0);
    expect(answer(foreignPull, projectA)).toBe(answer(ghostPull, ghost)!);
    for (const [repo, t] of [
      [projectA, "b-into-a"],
      [ghost, "b-into-a"],
    ] as const)
      expect((await dockerCli(["tag", ref, `${host}/${repo}:${t}`])).code).toBe(0);
    images.push(`${host}/${projectA}:b-into-a`, `${host}/${ghost}:b-into-a`);
    const foreignPush = await dockerCli(["push", `${host}/${projectA}:b-into-a`]);
    const ghostPush = await dockerCli(["push", `${host}/${ghost}:b-into-a`]);
    expect(foreignPush.code).not.toBe(0);
    expect(answer(foreignPush, projectA)).toBe(answer(ghostPush, ghost)!);

    // The token service itself: B's token gets no action on A's repository, A's token gets both.
    const tokenFor = async (secret: string) => {
      const r = await s.get(`/registry/token?service=slipway-registry&scope=repository:${projectA}:pull,push`, {
        headers: { authorization: `Basic ${Buffer.from(`x-token:${secret}`).toString("base64")}` },
      });
      const jwt = ((await r.json()) as { token: string }).token;
      return (
        JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as { access: { actions: string[] }[] }
      ).access[0]!.actions;
    };
    expect(await tokenFor(tokenB)).toEqual([]);
    expect(await tokenFor(pullToken)).toEqual(["pull"]);
    expect(await tokenFor(tokenA)).toEqual(["pull", "push"]);
    const audit = (await api("/api/v1/audit?limit=200")).body as unknown as { action: string; target: string }[];
    expect(audit.some((e) => e.action === "registry.pull_token" && e.target === projectA)).toBe(true);
    const anonymous = await s.get(`/registry/token?service=slipway-registry&scope=repository:${projectA}:pull`);
    expect(anonymous.status).toBe(401);
  }, 600_000);

  test("a pull token cannot read another project, and GetPullInfo of a foreign build is not found", async () => {
    const r = await depot(["pull-token", "--project", projectA], tokenB);
    expect(r.code).not.toBe(0);
    expect(r.log).toContain("not_found");
    // (Not `depot pull`: when GetPullInfo fails it falls back to Depot's own registry host.)
    const info = await s.get("/depot.cli.v1.BuildService/GetPullInfo", {
      method: "POST",
      headers: { authorization: `Bearer ${tokenB}`, "content-type": "application/json" },
      body: JSON.stringify({ buildId: savedBuild }),
    });
    expect(info.status).toBe(404);
    expect(((await info.json()) as { code: string }).code).toBe("not_found");
    const own = await s.get("/depot.cli.v1.BuildService/GetPullInfo", {
      method: "POST",
      headers: { authorization: `Bearer ${tokenA}`, "content-type": "application/json" },
      body: JSON.stringify({ buildId: savedBuild }),
    });
    const body = (await own.json()) as { reference: string; username: string; password: string };
    expect(body.reference).toBe(`${host}/${projectA}:${savedBuild}`);
    expect(body.username).toBe("x-token");
    expect(body.password).toStartWith("slw_r_");
    // depot push copies from Depot's own blob service: refused, saying why.
    const push = await s.get("/depot.cli.v1.PushService/StartPush", {
      method: "POST",
      headers: { authorization: `Bearer ${tokenA}`, "content-type": "application/json" },
      body: JSON.stringify({ buildId: savedBuild, tag: "x" }),
    });
    expect(((await push.json()) as { code: string; message: string }).code).toBe("unimplemented");
  }, 120_000);

  test("--push with the client's own registry credentials: the builder gets them through the session (docker config), another project's are refused", async () => {
    // Builders reach the appliance by its alias when the public host is loopback; the client
    // holds credentials for that name in its own docker config, as it would for any registry.
    const port = new URL(s.url).port;
    const target = `registry.slipway.internal:${port}/${projectA}:pushed-with-client-credentials`;
    const ctx = join(work, "ctx-push");
    writeBusyboxContext(ctx, 'ENTRYPOINT ["/bin/busybox", "echo", "pushed-with-client-credentials"]');
    const withCredentials = async (token: string) => {
      const dir = join(work, `docker-config-${token.slice(-6)}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, "config.json"),
        JSON.stringify({
          auths: {
            [`registry.slipway.internal:${port}`]: { auth: Buffer.from(`x-token:${token}`).toString("base64") },
          },
        }),
      );
      const p = Bun.spawn([DEPOT, "build", "--project", projectA, "--progress", "plain", "-t", target, "--push", ctx], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...env(tokenA), DOCKER_CONFIG: dir },
      });
      return finished(p);
    };
    const refused = await withCredentials(tokenB); // builds in A, but pushes with B's credentials
    expect(refused.code).not.toBe(0);
    expect(refused.log).toContain("push access denied"); // the registry granted B nothing on A (insufficient_scope)
    expect(refused.log).toContain("insufficient_scope");
    expect(
      ((await api(`/api/v1/projects/${projectA}/registry`)).body.images as { tags: string[] }[]).flatMap((i) => i.tags),
    ).not.toContain("pushed-with-client-credentials");
    const pushed = await withCredentials(tokenA);
    expect(pushed.code, pushed.log).toBe(0);
    expect(pushed.log).toContain("pushing manifest");
    expect(
      ((await api(`/api/v1/projects/${projectA}/registry`)).body.images as { tags: string[] }[]).flatMap((i) => i.tags),
    ).toContain("pushed-with-client-credentials");
  }, 600_000);

  test("retention 0 plus GC: the saved image is gone and its disk is freed", async () => {
    const storage = join(s.dataDir, "registry", "storage");
    const before = dirBytes(storage);
    const forbidden = await api(`/api/v1/projects/${projectA}/registry`, {
      method: "PUT",
      body: { retention_days: 0 },
      token: tokenB,
    });
    expect(forbidden.status).toBe(404);
    const set = await api(`/api/v1/projects/${projectA}/registry`, { method: "PUT", body: { retention_days: 0 } });
    expect(set.status).toBe(200);
    expect(set.body.retention_days).toBe(0);
    const gc = await api("/api/v1/registry/gc", { method: "POST", body: {} });
    expect(gc.status, JSON.stringify(gc.body)).toBe(200);
    expect(gc.body.ok).toBe(true);
    const deletedTags = (gc.body.deleted as { tags: string[] }[]).flatMap((d) => d.tags);
    expect(deletedTags).toContain(savedBuild);
    expect(deletedTags).toContain("release");
    const after = dirBytes(storage);
    console.log(`registry storage: ${before} bytes before, ${after} after retention + GC`);
    expect(before - after).toBeGreaterThan(1_000_000); // busybox's layer, at least
    expect(((await api(`/api/v1/projects/${projectA}/registry`)).body.images as unknown[]).length).toBe(0);
    const audit = (await api("/api/v1/audit?limit=50")).body as unknown as { action: string }[];
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(["registry.retention", "registry.gc"]));

    const again = await depot(["pull", "--project", projectA, "-t", "slipway-registry-test/gone:1", savedBuild]);
    expect(again.code).not.toBe(0);
    expect(again.log).toMatch(/not found|manifest unknown/i);
  }, 600_000);

  test("a serve that listens only on loopback refuses --save (builders could not push) and loads without the registry", async () => {
    const local = await serve(
      slipwayBinary(),
      join(work, "data-loopback"),
      ["--set", "builders.dockerd_containerd_store=true", "--set", "volumes.encryption=none"],
      {},
      { publicHost: "localhost" },
    );
    try {
      const adminL = readFileSync(join(work, "data-loopback", "initial-admin-token"), "utf8").trim();
      const headers = { authorization: `Bearer ${adminL}`, "content-type": "application/json" };
      const proj = (
        (await (
          await local.get("/api/v1/orgs/default/projects", {
            method: "POST",
            headers,
            body: JSON.stringify({ name: "local" }),
          })
        ).json()) as { id: string }
      ).id;
      const call = async (options: unknown[]) => {
        const r = await local.get("/depot.cli.v1.BuildService/CreateBuild", {
          method: "POST",
          headers,
          body: JSON.stringify({ projectId: proj, options }),
        });
        return {
          status: r.status,
          body: (await r.json()) as { code?: string; message?: string; registry?: { loadUsingRegistry?: boolean } },
        };
      };
      const saved = await call([{ command: "COMMAND_BUILD", save: true }]);
      expect(saved.status).toBe(400);
      expect(saved.body.code).toBe("failed_precondition");
      expect(saved.body.message).toContain("listens only on loopback");
      const loaded = await call([{ command: "COMMAND_BUILD", load: true }]);
      expect(loaded.status).toBe(200);
      expect(loaded.body.registry?.loadUsingRegistry ?? false).toBe(false);

      const ready = (await (await local.get("/readyz")).json()) as {
        checks: Record<string, { status: string; output: string }[]>;
      };
      expect(ready.checks["registry:running"]![0]!.status).toBe("warn");
      expect(ready.checks["registry:running"]![0]!.output).toContain("builders cannot push");
      // serve killed outright: its registry goes with it (no orphan keeps the storage).
      const config = join(local.dataDir, "registry", "config.yml");
      const pids = async () =>
        (await run(["pgrep", "-f", `docker-registry serve ${config}`])).stdout.trim().split("\n").filter(Boolean);
      expect(await pids()).toHaveLength(1);
      local.proc.kill("SIGKILL");
      await local.proc.exited;
      let left = await pids();
      for (let i = 0; i < 50 && left.length > 0; i++) await Bun.sleep(100), (left = await pids());
      expect(left).toEqual([]);
    } finally {
      await local.stop();
    }
  }, 120_000);

  test("docker-registry is restarted when it dies, and stopped with serve", async () => {
    const config = join(s.dataDir, "registry", "config.yml");
    const pidOf = async () =>
      (await run(["pgrep", "-f", `docker-registry serve ${config}`])).stdout.trim().split("\n").filter(Boolean);
    const [first] = await pidOf();
    expect(first).toBeDefined();
    process.kill(Number(first), "SIGKILL");
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      await Bun.sleep(100);
      back = (await s.get("/v2/")).status === 401;
    }
    expect(back).toBe(true);
    const [second] = await pidOf();
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(s.logs()).toContain("docker-registry exited; restarting it");
    expect(await s.stop()).toBe(0);
    expect(await pidOf()).toEqual([]);
  }, 120_000);
});
