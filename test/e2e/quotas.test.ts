/**
 * @module test/e2e/quotas.test
 * Per-organization quotas and the host's builder slots with real parts: the compiled `slipway
 * serve`, `slipway orgs set-quotas`, the official depot CLI (unchanged) and real builders on the
 * local Docker engine.
 *
 * Shows: projects beyond max_projects and settings beyond the CPU, memory and cache quotas are
 * refused with problem+json naming the quota, its limit and the value; lowering quotas below the
 * usage keeps projects and builds working (builders start within the new quota); a depot build
 * beyond the organization's max_running_builders is refused at CreateBuild with resource_exhausted
 * and nothing is made; on a full host (builders.max_running = 1) another organization's build
 * waits for the slot and then builds, and one that waits past builders.queue_timeout_seconds is
 * refused with resource_exhausted.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway, serve, type Served } from "../support/serve.ts";
import { DEPOT, depotEnv, finished, waitFor } from "../support/depot.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT}; npm installs it on linux-x64)`
  : await builderImageMissing();
const QUEUE_TIMEOUT_S = 25;

integrationSuite("quotas: refused through the API and the depot CLI, builders queued on a full host", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-quotas-"));
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  let s: Served;
  let bin = "";
  let admin = "";
  const ids: Record<string, string> = {};
  const tokens: Record<string, string> = {};

  const api = async (token: string, method: string, path: string, body?: unknown) => {
    const r = await s.get(path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return {
      status: r.status,
      type: r.headers.get("content-type"),
      json: text && r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : null,
    };
  };
  const cli = (...args: string[]) =>
    runSlipway(bin, [...args, "--server", s.url, "--token", admin, "--cacert", join(s.dataDir, "ca.pem")], {
      XDG_CONFIG_HOME: join(work, "cfg"),
    });
  const depotBuild = (project: string, ctx: string, token = tokens[project]!) =>
    depotRun(["build", "--project", project, "--progress", "plain", ctx], token);
  const depotRun = (args: string[], token: string) =>
    Bun.spawn([DEPOT, ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv(s, join(work, "home"), token),
    });
  const context = (name: string, body: string) => {
    const dir = join(work, name);
    writeBusyboxContext(dir, body);
    return dir;
  };
  const builds = async (project: string) =>
    (await api(admin, "GET", `/api/v1/projects/${project}/builds`)).json.builds as { id: string; status: string }[];
  const builderOf = async (project: string) =>
    (
      (await docker.listContainers({ filters: JSON.stringify({ label: [`io.slipway.project=${project}`] }) })) as {
        Id: string;
      }[]
    )[0] ?? null;

  beforeAll(async () => {
    const image = await ensureDockerdBuilderImage();
    bin = slipwayBinary();
    const dataDir = join(work, "data");
    s = await serve(
      bin,
      dataDir,
      [
        "--set",
        `builders.dockerd_image=${image.ref}`,
        "--set",
        "volumes.encryption=none",
        "--set",
        "builders.max_running=1",
        "--set",
        `builders.queue_timeout_seconds=${QUEUE_TIMEOUT_S}`,
      ],
      {},
      { publicHost: "localhost" },
    );
    admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    expect((await api(admin, "POST", "/api/v1/orgs", { slug: "other", name: "Other", owner: "admin" })).status).toBe(
      201,
    );
    for (const [key, org, name] of [
      ["p1", "default", "one"],
      ["p2", "default", "two"],
      ["q1", "other", "q-one"],
    ] as const) {
      const r = await api(admin, "POST", `/api/v1/orgs/${org}/projects`, { name });
      expect(r.status).toBe(201);
      ids[key] = r.json.id;
      tokens[r.json.id] = (
        await api(admin, "POST", "/api/v1/tokens", { kind: "project", name: `ci-${key}`, project: r.json.id })
      ).json.token;
    }
    mkdirSync(join(work, "home"), { recursive: true });
  }, 20 * 60_000);

  afterAll(async () => {
    await s?.stop();
    await removeBuildersOf(Object.values(ids));
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    rmSync(work, { recursive: true, force: true });
  });

  test("projects beyond max_projects and settings beyond the CPU, memory and cache quotas are refused, naming the quota, limit and value", async () => {
    const set = await cli(
      "orgs",
      "set-quotas",
      "--org",
      "default",
      "--max-projects",
      "3",
      "--max-builder-cpus",
      "2",
      "--max-builder-memory-mb",
      "2048",
      "--max-cache-size-gb",
      "20",
      "--max-running-builders",
      "1",
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/max_projects\s+3 \(set\)\s+100\s+2/);
    expect((await api(admin, "POST", "/api/v1/orgs/default/projects", { name: "three" })).status).toBe(201);
    const fourth = await api(admin, "POST", "/api/v1/orgs/default/projects", { name: "four" });
    expect(fourth.status).toBe(403);
    expect(fourth.type).toBe("application/problem+json");
    expect(fourth.json).toMatchObject({
      type: "urn:slipway:problem:quota-exceeded",
      title: "Quota exceeded",
      quota: "max_projects",
      limit: 3,
      current: 3,
    });
    expect(fourth.json.detail).toContain("its quota max_projects is 3");
    // The depot CLI's projects create: the same refusal, as resource_exhausted.
    const orgId = (await api(admin, "GET", "/api/v1/orgs/default")).json.id as string;
    const viaDepot = await finished(depotRun(["projects", "create", "four", "-o", orgId], admin));
    expect(viaDepot.code).not.toBe(0);
    expect(viaDepot.log).toContain(
      "resource_exhausted: the organization has 3 project(s), its quota max_projects is 3",
    );
    expect((await api(admin, "GET", "/api/v1/orgs/default/projects")).json).toHaveLength(3);
    for (const [setting, value, quota, limit] of [
      ["builder_cpus", 64, "max_builder_cpus", 2],
      ["builder_memory_mb", 65536, "max_builder_memory_mb", 2048],
      ["cache_size_gb", 500, "max_cache_size_gb", 20],
    ] as const) {
      const r = await api(admin, "PATCH", `/api/v1/projects/${ids.p1}`, { [setting]: value });
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({ type: "urn:slipway:problem:quota-exceeded", quota, limit, current: value });
    }
    // Other organizations keep the defaults.
    expect((await api(admin, "PATCH", `/api/v1/projects/${ids.q1}`, { builder_memory_mb: 4096 })).status).toBe(200);
    // The quotas in force and the usage, as the CLI shows them.
    const shown = await cli("orgs", "quotas", "--org", "default");
    expect(shown.stdout).toMatch(/max_running_builders\s+1 \(set\)\s+8\s+0/);
  }, 120_000);

  test("lowering quotas below the usage keeps the projects; a builder starts within the new quota and builds", async () => {
    // p1 was created with 2 CPUs and 4096 MB; the quotas now say 1 CPU, 1024 MB, and 1 project of 3.
    const lowered = await api(admin, "PUT", "/api/v1/orgs/default/quotas", {
      max_projects: 1,
      max_builder_cpus: 1,
      max_builder_memory_mb: 1024,
    });
    expect(lowered.json).toMatchObject({ limits: { max_projects: 1, max_builder_cpus: 1 }, usage: { projects: 3 } });
    expect((await api(admin, "GET", `/api/v1/projects/${ids.p1}`)).json).toMatchObject({
      builder_cpus: 2,
      builder_memory_mb: 4096,
    });
    expect((await api(admin, "PATCH", `/api/v1/projects/${ids.p1}`, { name: "one-renamed" })).status).toBe(200);
    const p = depotBuild(ids.p1!, context("lowered", "RUN sleep 2 && echo within-quota"));
    await waitFor("p1's builder", async () => (await builderOf(ids.p1!)) !== null, 120_000);
    const info = (await docker.getContainer((await builderOf(ids.p1!))!.Id).inspect()) as {
      HostConfig: { NanoCpus: number; Memory: number };
    };
    expect(info.HostConfig).toMatchObject({ NanoCpus: 1e9, Memory: 1024 * 1024 * 1024 });
    const r = await finished(p);
    expect(r.code, r.log).toBe(0);
    expect(
      (
        await api(admin, "PUT", "/api/v1/orgs/default/quotas", {
          max_projects: null,
          max_builder_cpus: null,
          max_builder_memory_mb: null,
        })
      ).status,
    ).toBe(200);
  }, 300_000);

  test("the depot CLI: a build beyond the organization's running builders is refused at CreateBuild; another organization's build waits for the host's one slot, then builds", async () => {
    // p1 holds the organization's one builder (max_running_builders 1) and the host's one slot.
    const long = depotBuild(ids.p1!, context("hold", "RUN sleep 20 && echo held"));
    await waitFor("p1's build to run", async () => (await builds(ids.p1!))[0]?.status === "running", 120_000);
    const p2Before = (await builds(ids.p2!)).length;
    const refused = await finished(depotBuild(ids.p2!, context("refused", "RUN echo never")));
    expect(refused.code).not.toBe(0);
    expect(refused.log).toContain("resource_exhausted");
    expect(refused.log).toContain(
      "the organization runs 1 builder(s) for builds in progress and its quota max_running_builders is 1",
    );
    expect((await builds(ids.p2!)).length).toBe(p2Before); // refused before anything was made

    // Another organization: below its own quota, but the host is full — it waits, then builds.
    const waitedFrom = Date.now();
    const waiting = finished(depotBuild(ids.q1!, context("waits", "RUN echo got-the-slot")));
    const held = await finished(long);
    expect(held.code, held.log).toBe(0);
    const q = await waiting;
    expect(q.code, q.log).toBe(0);
    expect(q.at).toBeGreaterThan(held.at);
    console.log(
      `other organization's build waited for the slot and finished ${((q.at - held.at) / 1000).toFixed(1)} s after the holder (${((q.at - waitedFrom) / 1000).toFixed(1)} s in all)`,
    );
    expect(s.logs()).toContain("a build waits for a builder slot");
    expect(s.logs()).toContain("stopping an idle builder to make room for a waiting build");
    // Where the time went: stopping the idle builder, then starting the waiting one's.
    const lines = s
      .logs()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { time: string; msg: string; reason?: string; project?: string });
    const at = (f: (l: (typeof lines)[number]) => boolean) => Date.parse(lines.filter(f).at(-1)?.time ?? "");
    const reclaim = at((l) => l.msg === "stopping an idle builder to make room for a waiting build");
    const stoppedAt = at((l) => l.msg === "builder stopped" && l.reason === "room for a waiting build");
    const readyAt = at((l) => l.msg === "builder ready" && l.project === ids.q1);
    console.log(
      `reclaiming the idle builder took ${((stoppedAt - reclaim) / 1000).toFixed(1)} s, the waiting build's builder was ready ${((readyAt - stoppedAt) / 1000).toFixed(1)} s later`,
    );
  }, 600_000);

  test("the depot CLI: a build that waits past builders.queue_timeout_seconds is refused with resource_exhausted", async () => {
    const long = depotBuild(ids.q1!, context("hold-long", `RUN sleep ${QUEUE_TIMEOUT_S + 15} && echo held`));
    await waitFor("q1's build to run", async () => (await builds(ids.q1!))[0]?.status === "running", 120_000);
    const started = Date.now();
    const r = await finished(depotBuild(ids.p1!, context("times-out", "RUN echo never")));
    const waited = (Date.now() - started) / 1000;
    expect(r.code).not.toBe(0);
    expect(r.log).toContain("resource_exhausted");
    expect(r.log).toContain(`this host runs 1 builder(s), its limit builders.max_running is 1; try again later`);
    expect(waited).toBeGreaterThanOrEqual(QUEUE_TIMEOUT_S - 1);
    expect(waited).toBeLessThan(QUEUE_TIMEOUT_S + 20);
    console.log(`a build on a full host was refused after ${waited.toFixed(1)} s (queue timeout ${QUEUE_TIMEOUT_S} s)`);
    const held = await finished(long);
    expect(held.code, held.log).toBe(0);
  }, 600_000);
});
