/**
 * @module test/e2e/build-flow.test
 * The product working, end to end: the compiled `slipway serve` as a real process, the official
 * depot CLI (npm @depot/cli-linux-x64, unchanged) pointed at it, real builders on the local Docker
 * engine (the `dockerd` runtime image assembled from Debian packages), real builds.
 *
 * Shows: a build with RUN steps and a cache mount succeeds and is listed with its steps and logs;
 * the same build again reports cached steps; a failing Dockerfile fails the build with BuildKit's
 * error; a cancel reaches the client through its health check; a client killed mid-build expires
 * and its connection is closed; tenants cannot reach each other's builds; a GitHub-Actions-shaped
 * OIDC token builds through the depot CLI's own OIDC path.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { listWorkers } from "../../src/wire/buildkit.ts";
import { findBuildkitClient } from "../../src/cli/client/build-session.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { githubClaims, startTestIssuer, type TestIssuer } from "../support/oidc-issuer.ts";
import { slipwayBinary } from "../support/binary.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";
import { DEPOT, depotEnv as sharedDepotEnv, finished, waitFor } from "../support/depot.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT}; npm installs it on linux-x64)`
  : findBuildkitClient(process.env)?.kind !== "buildx"
    ? "docker-buildx is not installed (.ci/run installs Debian trixie's docker-buildx)"
    : await builderImageMissing();

integrationSuite("build flow: the depot CLI against slipway serve with real builders", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-flow-"));
  let s: Served;
  let serveArgs: string[] = [];
  let imageRef = "";
  let admin = "";
  const ids: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  let gh: TestIssuer;
  let idTokenServer: ReturnType<typeof Bun.serve> | null = null;

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
  const rpc = async (token: string, method: string, body: unknown) => {
    const r = await s.get(`/${method}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: r.status, json: (await r.json()) as Record<string, any> };
  };
  const depotEnv = (extra: Record<string, string>) => sharedDepotEnv(s, join(work, "home"), null, extra);
  const depotBuild = (
    token: string | null,
    project: string,
    ctx: string,
    extra: string[] = [],
    env: Record<string, string> = {},
  ) =>
    Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", ...extra, ctx], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv({ ...(token ? { DEPOT_TOKEN: token } : {}), ...env }),
    });
  const context = (name: string, body: string) => {
    const dir = join(work, name);
    writeBusyboxContext(dir, body);
    return dir;
  };
  const latestBuild = async (project: string) =>
    (await api(admin, "GET", `/api/v1/projects/${project}/builds?limit=1`)).json.builds[0];

  beforeAll(async () => {
    const image = await ensureDockerdBuilderImage();
    const dataDir = join(work, "data");
    imageRef = image.ref;
    serveArgs = [
      "--set",
      `builders.dockerd_image=${image.ref}`,
      "--set",
      "volumes.encryption=none",
      "--set",
      "builds.health_timeout_seconds=10",
      "--set",
      "builds.cancel_grace_seconds=5",
      "--set",
      "oidc.allow_internal=127.0.0.0/8",
    ]; // the test issuer listens on loopback
    s = await serve(slipwayBinary(), dataDir, serveArgs, {}, { publicHost: "localhost" });
    admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const mk = async (org: string, name: string) =>
      (await api(admin, "POST", `/api/v1/orgs/${org}/projects`, { name })).json.id as string;
    ids.A = await mk("default", "app-a");
    const orgB = await api(admin, "POST", "/api/v1/orgs", { slug: "other", name: "Other", owner: "admin" });
    expect(orgB.status).toBe(201);
    ids.B = await mk("other", "app-b");
    for (const p of ["A", "B"])
      tokens[p] = (
        await api(admin, "POST", "/api/v1/tokens", { kind: "project", name: `ci-${p}`, project: ids[p] })
      ).json.token;
    mkdirSync(join(work, "home"), { recursive: true });
  }, 20 * 60_000);

  afterAll(async () => {
    idTokenServer?.stop(true);
    await gh?.stop();
    // Builders started by this appliance: stop serve, then remove them (they outlive serve by design).
    await s?.stop();
    await removeBuildersOf(Object.values(ids));
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    rmSync(work, { recursive: true, force: true });
  });

  test("the depot CLI builds RUN steps with a cache mount (type=local); the build is listed with steps and logs; again (type=tar) → cached", async () => {
    const ctx = context(
      "ok",
      [
        `RUN --mount=type=cache,target=/cache echo run >> /cache/log && echo "cache-lines $(wc -l < /cache/log)"`,
        `RUN echo hello-from-slipway > /hello.txt`,
      ].join("\n"),
    );
    const out = join(work, "out");
    const first = await finished(depotBuild(tokens.A!, ids.A!, ctx, ["-o", `type=local,dest=${out}`]));
    expect(first.code, first.log).toBe(0);
    expect(readFileSync(join(out, "hello.txt"), "utf8")).toBe("hello-from-slipway\n");
    const b1 = await latestBuild(ids.A!);
    expect(b1.status).toBe("finished");
    expect(b1.platforms).toEqual(["linux/amd64"]);
    // build_url is the build's page in the web UI.
    const page = await s.get(new URL(b1.build_url).pathname);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("/ui/app.js");
    const listed = await rpc(tokens.A!, "depot.cli.v1.BuildService/ListBuilds", { projectId: ids.A });
    expect(listed.status).toBe(200);
    expect(listed.json.builds[0]).toMatchObject({ id: b1.id, status: 2 }); // BUILD_STATUS_FINISHED
    const steps = (await api(tokens.A!, "GET", `/api/v1/builds/${b1.id}/steps`)).json as {
      name: string;
      cached: boolean;
    }[];
    const runSteps = steps.filter((x) => x.name.includes("RUN echo hello-from-slipway"));
    expect(runSteps).toHaveLength(1);
    expect(runSteps[0]!.cached).toBe(false);
    const logs = await api(tokens.A!, "GET", `/api/v1/builds/${b1.id}/logs`);
    expect(logs.status).toBe(200);
    expect(logs.text).toContain("cache-lines 1");

    // Again, exported as a tarball this time: the same steps, cached.
    const tarball = join(work, "out.tar");
    const second = await finished(depotBuild(tokens.A!, ids.A!, ctx, ["-o", `type=tar,dest=${tarball}`]));
    expect(second.code, second.log).toBe(0);
    const fromTar = Bun.spawnSync(["tar", "-xOf", tarball, "hello.txt"]);
    expect(new TextDecoder().decode(fromTar.stdout)).toBe("hello-from-slipway\n");
    const b2 = await latestBuild(ids.A!);
    expect(b2.id).not.toBe(b1.id);
    const steps2 = (await api(admin, "GET", `/api/v1/builds/${b2.id}/steps`)).json as {
      name: string;
      cached: boolean;
    }[];
    expect(steps2.find((x) => x.name.includes("RUN echo hello-from-slipway"))?.cached).toBe(true);
  }, 600_000);

  test("a Dockerfile that fails: the build is failed with BuildKit's error, the client exits non-zero", async () => {
    const ctx = context("fail", `RUN echo about-to-fail && exit 3`);
    const r = await finished(depotBuild(tokens.A!, ids.A!, ctx));
    expect(r.code).not.toBe(0);
    const b = await latestBuild(ids.A!);
    expect(b.status).toBe("failed");
    expect(b.error).toMatch(/exit code: 3|did not complete successfully/);
    const logs = await api(admin, "GET", `/api/v1/builds/${b.id}/logs`);
    expect(logs.text).toContain("about-to-fail");
  }, 300_000);

  test("cancel mid-build: the client learns it from its health check, stops, exits non-zero; the build is canceled", async () => {
    const ctx = context("cancel", `RUN echo started-long && sleep 120`);
    const p = depotBuild(tokens.A!, ids.A!, ctx);
    const done = finished(p);
    let id = "";
    await waitFor(
      "the long build to run",
      async () => {
        const b = await latestBuild(ids.A!);
        if (b.status !== "running") return false;
        id = b.id;
        return (await api(admin, "GET", `/api/v1/builds/${id}/logs`)).text.includes("started-long");
      },
      120_000,
    );
    const t0 = Date.now();
    const c = await api(admin, "POST", `/api/v1/builds/${id}/cancel`);
    expect(c.status).toBe(202);
    const r = await done;
    const stoppedAfter = Date.now() - t0;
    expect(r.code).not.toBe(0);
    expect(stoppedAfter).toBeLessThan(20_000); // health every 5 s, then the cancel grace
    const b = (await api(admin, "GET", `/api/v1/builds/${id}`)).json;
    expect(b.status).toBe("canceled");
    console.log(`  cancel → client exited after ${stoppedAfter} ms`);
  }, 300_000);

  test("a client killed mid-build (kill -9): the build expires after the health timeout", async () => {
    const ctx = context("killed", `RUN echo started-killed && sleep 120`);
    const p = depotBuild(tokens.A!, ids.A!, ctx);
    let id = "";
    await waitFor(
      "the build to run",
      async () => {
        const b = await latestBuild(ids.A!);
        if (b.status !== "running") return false;
        id = b.id;
        return (await api(admin, "GET", `/api/v1/builds/${id}/logs`)).text.includes("started-killed");
      },
      120_000,
    );
    p.kill("SIGKILL");
    const t0 = Date.now();
    await waitFor(
      "the build to expire",
      async () => (await api(admin, "GET", `/api/v1/builds/${id}`)).json.status === "expired",
      40_000,
    );
    const after = Date.now() - t0;
    expect(after).toBeLessThan(25_000);
    expect((await api(admin, "GET", `/api/v1/builds/${id}`)).json.error).toContain("no health report");
    console.log(`  killed client → build expired after ${after} ms (health timeout 10 s)`);
  }, 300_000);

  test("tenants: project B's token cannot build in A, connect to A's build or read its logs; a build token drives only its build", async () => {
    const created = await rpc(tokens.A!, "depot.cli.v1.BuildService/CreateBuild", { projectId: ids.A, options: [] });
    expect(created.status).toBe(200);
    const buildA = created.json.buildId as string;
    const buildToken = created.json.buildToken as string;
    expect(buildToken).toMatch(/^slw_b_/);

    expect(
      (await rpc(tokens.B!, "depot.cli.v1.BuildService/CreateBuild", { projectId: ids.A, options: [] })).json.code,
    ).toBe("not_found");
    const conn = await rpc(tokens.B!, "depot.cli.v1.BuildService/GetBuildKitConnection", {
      buildId: buildA,
      platform: "BUILDER_PLATFORM_AMD64",
    });
    expect(conn.status).toBe(404);
    expect(conn.json.code).toBe("not_found");
    expect((await api(tokens.B!, "GET", `/api/v1/builds/${buildA}/logs`)).status).toBe(404);
    expect(
      (await rpc(tokens.B!, "depot.cli.v1.BuildService/FinishBuild", { buildId: buildA, success: {} })).json.code,
    ).toBe("not_found");

    // The build token: its own build yes, another build of the same project no, no project listing.
    const other = (await rpc(tokens.A!, "depot.cli.v1.BuildService/CreateBuild", { projectId: ids.A, options: [] }))
      .json.buildId as string;
    expect((await api(buildToken, "GET", `/api/v1/builds/${buildA}`)).status).toBe(200);
    expect((await api(buildToken, "GET", `/api/v1/builds/${other}`)).status).toBe(404);
    expect((await rpc(buildToken, "depot.cli.v1.BuildService/ReportBuildHealth", { buildId: other })).json.code).toBe(
      "not_found",
    );
    // Answered (200, not an error), and empty: proto3 JSON leaves out an empty list. The project
    // token lists the same project, so the empty answer is the build token's, not the server's.
    const listedByBuild = await rpc(buildToken, "depot.cli.v1beta1.ProjectsService/ListProjects", {});
    expect(listedByBuild.status).toBe(200);
    expect(listedByBuild.json.projects ?? []).toEqual([]);
    const listedByProject = await rpc(tokens.A!, "depot.cli.v1beta1.ProjectsService/ListProjects", {});
    expect(listedByProject.status).toBe(200);
    expect((listedByProject.json.projects as { id: string }[]).map((p) => p.id)).toContain(ids.A!);
    expect(
      (await rpc(buildToken, "depot.cli.v1.BuildService/CreateBuild", { projectId: ids.A, options: [] })).json.code,
    ).toBe("not_found");
    const fin = await rpc(buildToken, "depot.cli.v1.BuildService/FinishBuild", { buildId: buildA, canceled: {} });
    expect(fin.status).toBe(200);
    expect(
      (await rpc(tokens.A!, "depot.cli.v1.BuildService/FinishBuild", { buildId: other, success: {} })).status,
    ).toBe(200);
    // Bad input is a Connect error naming the field, never a stack.
    const bad = await rpc(tokens.A!, "depot.cli.v1.BuildService/GetBuildKitConnection", { buildId: 12 });
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({ code: "invalid_argument", message: expect.stringContaining("/buildId") });
  }, 120_000);

  test("slipway build: the same build with docker-buildx; failures exit non-zero; slipway.json names the project", async () => {
    const bin = slipwayBinary();
    const cli = (args: string[], extra: Record<string, string> = {}) =>
      Bun.spawn([bin, "build", "--server", s.url, "--cacert", join(s.dataDir, "ca.pem"), ...args], {
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", HOME: join(work, "home"), SLIPWAY_TOKEN: tokens.A!, ...extra },
      });
    const ctx = context("slipway-build", `RUN echo from-slipway-build > /built.txt`);
    writeFileSync(join(ctx, "slipway.json"), JSON.stringify({ id: ids.A }));
    const out = join(work, "out-sb");
    const first = await finished(cli(["--progress", "plain", "-o", `type=local,dest=${out}`, ctx]));
    expect(first.code, first.log).toBe(0);
    expect(readFileSync(join(out, "built.txt"), "utf8")).toBe("from-slipway-build\n");
    expect(first.log).toContain("with buildx");
    const b = await latestBuild(ids.A!);
    expect(b.status).toBe("finished");
    expect(b.started_by).toMatch(/^token:/);
    const again = await finished(cli(["--progress", "plain", ctx]));
    expect(again.code, again.log).toBe(0);
    const steps = (await api(admin, "GET", `/api/v1/builds/${(await latestBuild(ids.A!)).id}/steps`)).json as {
      name: string;
      cached: boolean;
    }[];
    expect(steps.find((x) => x.name.includes("RUN echo from-slipway-build"))?.cached).toBe(true);

    const bad = context("slipway-build-bad", `RUN echo failing-now && exit 4`);
    const failed = await finished(cli(["--project", ids.A!, "--progress", "plain", bad]));
    expect(failed.code).toBe(1);
    const fb = await latestBuild(ids.A!);
    expect(fb.status).toBe("failed");
    expect(fb.error).toMatch(/exit code: 4/);
    // No credential, no CI: a usage error that says how to log in, and nothing is created.
    const before = (await latestBuild(ids.A!)).id;
    const noLogin = await finished(
      Bun.spawn([bin, "build", "--server", s.url, "--project", ids.A!, ctx], {
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", HOME: join(work, "home") },
      }),
    );
    expect(noLogin.code).toBe(2);
    expect(noLogin.log).toContain("slipway login");
    expect((await latestBuild(ids.A!)).id).toBe(before);
  }, 300_000);

  test("slipway buildkit-env: a local BUILDKIT_HOST that reaches the project's builder until Ctrl-C", async () => {
    const p = Bun.spawn(
      [slipwayBinary(), "buildkit-env", "--server", s.url, "--cacert", join(s.dataDir, "ca.pem"), "--project", ids.A!],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", HOME: join(work, "home"), SLIPWAY_TOKEN: tokens.A! },
      },
    );
    const reader = p.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const m = /BUILDKIT_HOST=tcp:\/\/127\.0\.0\.1:(\d+)/.exec(text);
    expect(m).not.toBeNull();
    const sock = net.connect(Number(m![1]), "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    const workers = await listWorkers(sock, 10_000);
    expect(workers[0]!.platforms).toContain("linux/amd64");
    const id = (await latestBuild(ids.A!)).id;
    expect((await api(admin, "GET", `/api/v1/builds/${id}`)).json.status).toBe("running");
    p.kill("SIGINT");
    expect(await p.exited).toBe(0);
    expect((await api(admin, "GET", `/api/v1/builds/${id}`)).json.status).toBe("finished");
  }, 120_000);

  test("serve killed with -9 while a builder runs: the restart adopts it, removes orphans, and builds go on", async () => {
    const ctx = context("adopt", `RUN echo adopted`);
    const warm = await finished(depotBuild(tokens.A!, ids.A!, ctx));
    expect(warm.code, warm.log).toBe(0);
    const ps = (filter: string) =>
      new TextDecoder()
        .decode(Bun.spawnSync(["docker", "ps", "-aq", "--no-trunc", "--filter", filter]).stdout)
        .split("\n")
        .filter(Boolean);
    const [builder] = ps(`label=io.slipway.project=${ids.A}`);
    expect(builder).toBeTruthy();
    const appliance = new TextDecoder()
      .decode(
        Bun.spawnSync(["docker", "inspect", "-f", '{{index .Config.Labels "io.slipway.appliance"}}', builder!]).stdout,
      )
      .trim();
    s.proc.kill("SIGKILL");
    await s.proc.exited;
    // While serve is down, a labelled container it never made appears (a leftover of another crash).
    const orphan = new TextDecoder()
      .decode(
        Bun.spawnSync([
          "docker",
          "create",
          "--label",
          `io.slipway.appliance=${appliance}`,
          "--entrypoint",
          "/bin/true",
          imageRef,
        ]).stdout,
      )
      .trim();
    expect(orphan).toMatch(/^[0-9a-f]{64}$/);
    s = await serve(slipwayBinary(), join(work, "data"), serveArgs, {}, { publicHost: "localhost" });
    await waitFor("reconcile", async () => s.logs().includes("builders reconciled"), 30_000);
    const line = s
      .logs()
      .split("\n")
      .find((l) => l.includes("builders reconciled"))!;
    expect(JSON.parse(line)).toMatchObject({ adopted: 1, removed: 1, lost: 0 });
    expect(ps(`label=io.slipway.appliance=${appliance}`)).toEqual([builder!]);
    const after = await finished(depotBuild(tokens.A!, ids.A!, ctx));
    expect(after.code, after.log).toBe(0);
    expect(ps(`label=io.slipway.project=${ids.A}`)).toEqual([builder!]); // the same container served it
  }, 300_000);

  test("a GitHub-Actions-shaped OIDC token builds through the depot CLI's own OIDC path, also with another tenant trusting the same repository", async () => {
    gh = await startTestIssuer();
    const trust = await api(admin, "POST", `/api/v1/projects/${ids.A}/trust`, {
      provider: "github",
      issuer: gh.issuer,
      owner: "acme",
      repository: "acme/app",
      audiences: ["https://depot.dev"],
    });
    expect(trust.status, trust.text).toBe(201);
    // Trust squatting: organization "other" trusts the same repository for its own project.
    const squat = await api(admin, "POST", `/api/v1/projects/${ids.B}/trust`, {
      provider: "github",
      issuer: gh.issuer,
      owner: "acme",
      repository: "acme/app",
      audiences: ["https://depot.dev"],
    });
    expect(squat.status, squat.text).toBe(201);
    const squatterAudit = async () => (await api(admin, "GET", "/api/v1/orgs/other/audit?limit=200")).text;
    const squatterBefore = await squatterAudit();
    const requested: string[] = [];
    idTokenServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        if (req.headers.get("authorization")?.toLowerCase() !== "bearer runner-request-token")
          return new Response("no", { status: 401 });
        const audience = new URL(req.url).searchParams.get("audience") ?? "";
        requested.push(audience);
        return Response.json({
          value: await gh.mint(githubClaims(gh.issuer, Math.floor(Date.now() / 1000), { aud: audience })),
        });
      },
    });
    const ctx = context("oidc", `RUN echo built-by-oidc`);
    const r = await finished(
      depotBuild(null, ids.A!, ctx, [], {
        GITHUB_ACTIONS: "true",
        ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${idTokenServer.port}/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: "runner-request-token",
      }),
    );
    expect(r.code, r.log).toBe(0);
    expect(requested).toContain("https://depot.dev");
    const b = await latestBuild(ids.A!);
    expect(b.status).toBe("finished");
    expect(b.started_by).toBe(`oidc:${gh.issuer}#repo:acme/app:ref:refs/heads/main`); // the issuer is part of who started it
    expect(await squatterAudit()).toBe(squatterBefore); // the squatter learns nothing of the victim's job
    expect((await latestBuild(ids.B!))?.started_by ?? "").not.toMatch(/^oidc:/);
  }, 300_000);
});
