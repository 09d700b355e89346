/**
 * The live build routes over a real SQLite file, the real builds service and its publisher:
 * a build's stream (stored state, then changes, then `end`), resuming with Last-Event-ID, the
 * project and organization streams, streams ending when the client goes away (their
 * subscriptions released), the per-credential limit, and a foreign build, project or
 * organization answering 404 exactly like a missing one, before any stream starts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Actor } from "../../auth/actor.ts";
import { tokensServiceFactory } from "../../auth/api-tokens.ts";
import { auditServiceFactory } from "../../auth/audit.ts";
import { buildsServiceFactory, type BuildsService } from "../../builds/index.ts";
import { UnauthenticatedError } from "../../errors.ts";
import { applyMigrations, openDatabase } from "../../db/index.ts";
import { silentLogger } from "../../log/logger.ts";
import { orgsServiceFactory } from "../../orgs/service.ts";
import { pkiServiceFactory } from "../../pki/index.ts";
import { projectsServiceFactory } from "../../projects/service.ts";
import { createSealer } from "../../secrets/index.ts";
import { PROBLEM_CONTENT_TYPE, toProblem } from "../problem.ts";
import type { IdentityContext } from "../identity.ts";
import { buildRoutes } from "./builds.ts";

let dir: string;
let db: Database;
let builds: BuildsService;
let app: { handle(r: Request): Promise<Response> };
const ORG = "org_aaaaaaaaaaaaaaaaaaab";
const PRJ = "prj_aaaaaaaaaaaaaaaaaaab";
const ORG_B = "org_aaaaaaaaaaaaaaaaaaac";
const PRJ_B = "prj_aaaaaaaaaaaaaaaaaaac";
const actors: Record<string, Actor> = {
  a: { kind: "project-token", tokenId: "tok_a", orgId: ORG, projectId: PRJ },
  orgA: { kind: "org-token", tokenId: "tok_oa", orgId: ORG },
  b: { kind: "project-token", tokenId: "tok_b", orgId: ORG_B, projectId: PRJ_B },
  orgB: { kind: "org-token", tokenId: "tok_ob", orgId: ORG_B },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-build-events-"));
  db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  for (const [o, p, slug] of [
    [ORG, PRJ, "acme"],
    [ORG_B, PRJ_B, "other"],
  ] as const) {
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)").run(
      o,
      slug,
      o,
      "2026-01-01T00:00:00Z",
    );
    db.query(
      "INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'p', 600, ?)",
    ).run(p, o, "2026-01-01T00:00:00Z");
  }
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  const projects = projectsServiceFactory({ db, audit, orgs });
  const pki = pkiServiceFactory({
    db,
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    applianceId: "t",
  });
  builds = buildsServiceFactory({
    db,
    projects,
    tokens: tokensServiceFactory({ db, audit }),
    pki,
    builders: { request: async () => ({ state: "starting" }), release: () => {}, ready: () => null },
    router: { buildEnded: () => {} },
    audit,
    log: silentLogger,
    publicUrl: "https://slipway.test",
    buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
    healthTimeoutMs: 60_000,
    logMaxBytes: 1 << 20,
  });
  const ctx = {
    orgs,
    projects,
    // As the app's: no credential is a 401 before any resource is looked up.
    actorOf: async (r: Request) => {
      const a = actors[r.headers.get("x-test-actor") ?? ""];
      if (!a) throw new UnauthenticatedError("a credential is required");
      return a;
    },
  } as unknown as IdentityContext;
  const { Elysia } = await import("elysia");
  // The app's error mapping, as src/api/app.ts does it (problem+json with the error's status).
  app = new Elysia()
    .onError(({ code, error, set }) => {
      const { problem } = toProblem(error, code);
      set.status = problem.status;
      set.headers["content-type"] = PROBLEM_CONTENT_TYPE;
      return JSON.stringify(problem);
    })
    .use(
      buildRoutes({
        ctx,
        builds,
        builders: { list: () => [], outdated: () => [], cacheUsage: async () => [] },
        encryption: "none",
        resetCache: async () => ({ platforms: [] }),
        maxStreamsPerCredential: 3,
        heartbeatMs: 50,
      }),
    );
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Reads an event stream as it comes: `next(pred)` waits for the first event matching it. */
function reader(res: Response) {
  const r = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const seen: { event: string; id?: string; data: unknown; raw: string }[] = [];
  let done = false;
  const pump = async (): Promise<boolean> => {
    const { value, done: d } = await r.read();
    if (d) {
      done = true;
      return false;
    }
    buf += decoder.decode(value);
    let i = buf.indexOf("\n\n");
    while (i >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event) seen.push({ event, id: /^id: (.*)$/m.exec(block)?.[1], data: JSON.parse(data!), raw: block });
      else seen.push({ event: block.startsWith(":") ? "comment" : "other", data: null, raw: block });
      i = buf.indexOf("\n\n");
    }
    return true;
  };
  return {
    seen,
    async next(pred: (e: (typeof seen)[number]) => boolean, from = 0) {
      for (;;) {
        const hit = seen.slice(from).find(pred);
        if (hit) return hit;
        if (done || !(await pump())) throw new Error(`stream ended; saw ${seen.map((s) => s.event).join(",")}`);
      }
    },
    async rest() {
      while (await pump()) {}
      return seen;
    },
    cancel: () => r.cancel(),
  };
}

const get = (path: string, actor: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  app.handle(new Request(`http://localhost${path}`, { headers: { "x-test-actor": actor, ...headers }, signal }));
const line = (text: string) => ({
  vertex: "sha256:v1",
  stream: 1,
  at: new Date(),
  data: new TextEncoder().encode(text),
});
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await Bun.sleep(10);
  expect(cond()).toBe(true);
};

describe("a build's stream", () => {
  test("stored state first, then steps, log lines and the build as they change, then end and close", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    builds.observed(build.id, { steps: [], logs: [line("one\ntwo\n")] });
    const res = await get(`/api/v1/builds/${build.id}/events`, "a");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/event-stream");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    const s = reader(res);
    expect(((await s.next((e) => e.event === "build")).data as { status: string }).status).toBe("created");
    expect((await s.next((e) => e.event === "log" && (e.data as { text: string }).text === "two")).id).toBeDefined();
    builds.observed(build.id, {
      steps: [
        { digest: "sha256:v1", name: "[1/2] RUN x", cached: false, started: new Date(), completed: null, error: "" },
      ],
      logs: [line("three\n<b>x</b>\n")],
    });
    const step = await s.next((e) => e.event === "step");
    expect(step.data).toMatchObject({ digest: "sha256:v1", name: "[1/2] RUN x", cached: false, completed_at: null });
    expect((await s.next((e) => (e.data as { text?: string })?.text === "<b>x</b>")).data).toMatchObject({
      vertex: "sha256:v1",
      stream: 1,
    });
    await s.next((e) => e.event === "comment"); // heartbeats keep it open
    builds.cancel(actors.a!, build.id);
    expect(
      (
        (
          await s.next(
            (e) =>
              e.event === "build" && (e.data as { cancel_requested_at: string | null }).cancel_requested_at !== null,
          )
        ).data as { status: string }
      ).status,
    ).toBe("created");
    builds.finish(actors.a!, build.id, { kind: "canceled" });
    const end = await s.next((e) => e.event === "end");
    expect((end.data as { status: string }).status).toBe("canceled");
    await s.rest(); // the server closed it
    const texts = s.seen.filter((e) => e.event === "log").map((e) => (e.data as { text: string }).text);
    expect(texts).toEqual(["one", "two", "three", "<b>x</b>"]);
    expect(builds.followerCount()).toBe(0);
  });

  test("a line cut across chunks arrives whole, live and on replay; an unfinished last line at the end", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    builds.observed(build.id, { steps: [], logs: [line("al"), line("pha\nbe")] });
    const live = reader(await get(`/api/v1/builds/${build.id}/events`, "a"));
    builds.observed(build.id, { steps: [], logs: [line("ta\ngam"), line("ma")] });
    await live.next((e) => (e.data as { text?: string })?.text === "beta");
    builds.finish(actors.a!, build.id, { kind: "success" });
    await live.next((e) => e.event === "end");
    const texts = (r: { seen: { event: string; data: unknown }[] }) =>
      r.seen.filter((e) => e.event === "log").map((e) => (e.data as { text: string }).text);
    expect(texts(live)).toEqual(["alpha", "beta", "gamma"]);
    const replay = reader(await get(`/api/v1/builds/${build.id}/events`, "a"));
    await replay.rest();
    expect(texts(replay)).toEqual(["alpha", "beta", "gamma"]);
    expect(replay.seen.filter((e) => e.event === "log").map((e) => e.id)).toEqual(
      live.seen.filter((e) => e.event === "log").map((e) => e.id),
    );
  });

  test("an ended build: everything stored, then end, then the stream closes", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    builds.observed(build.id, { steps: [], logs: [line("only\n")] });
    builds.finish(actors.a!, build.id, { kind: "error", error: "boom" });
    const seen = await reader(await get(`/api/v1/builds/${build.id}/events`, "a")).rest();
    expect(seen.filter((e) => e.event !== "comment" && e.event !== "other").map((e) => e.event)).toEqual([
      "build",
      "log",
      "end",
    ]);
    expect(seen.find((e) => e.event === "end")!.data).toMatchObject({ status: "failed", error: "boom" });
    expect(builds.followerCount()).toBe(0);
  });

  test("Last-Event-ID resumes after the last line seen: no line twice, none lost", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    builds.observed(build.id, { steps: [], logs: [line("l1\nl2\nl3\n"), line("l4\n")] });
    const first = reader(await get(`/api/v1/builds/${build.id}/events`, "a"));
    const l2 = await first.next((e) => (e.data as { text?: string })?.text === "l2");
    await first.cancel();
    await until(() => builds.followerCount() === 0);
    builds.observed(build.id, { steps: [], logs: [line("l5\n")] });
    const again = reader(await get(`/api/v1/builds/${build.id}/events`, "a", { "last-event-id": l2.id! }));
    await again.next((e) => (e.data as { text?: string })?.text === "l5");
    expect(again.seen.filter((e) => e.event === "log").map((e) => (e.data as { text: string }).text)).toEqual([
      "l3",
      "l4",
      "l5",
    ]);
    await again.cancel();
    await until(() => builds.followerCount() === 0);
  });

  test("log_batch: the stored log as `logs` arrays of at most that many lines, the same lines and ids as one by one; lines published together as one, before what follows them; resumable from a batch's id", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    const text = Array.from({ length: 7 }, (_, i) => `n${i + 1}\n`).join("");
    builds.observed(build.id, { steps: [], logs: [line(text.slice(0, 10)), line(text.slice(10))] });
    const single = reader(await get(`/api/v1/builds/${build.id}/events`, "a"));
    await single.next((e) => (e.data as { text?: string })?.text === "n7");
    await single.cancel();
    const ones = single.seen.filter((e) => e.event === "log");
    const batched = reader(await get(`/api/v1/builds/${build.id}/events?log_batch=3`, "a"));
    await batched.next((e) => e.event === "logs" && (e.data as unknown[]).length === 1);
    const batches = batched.seen.filter((e) => e.event === "logs");
    expect(batches.map((e) => (e.data as unknown[]).length)).toEqual([3, 3, 1]);
    expect(batches.flatMap((e) => e.data as unknown[])).toEqual(ones.map((e) => e.data));
    // Each batch's id is its last line's: what EventSource sends back as Last-Event-ID.
    expect(batches.map((e) => e.id)).toEqual([ones[2]!.id, ones[5]!.id, ones[6]!.id]);
    // Lines that arrive together are one event, and go out before an event that follows them.
    const from = batched.seen.length;
    builds.observed(build.id, { steps: [], logs: [line("n8\nn9\n")] });
    builds.cancel(actors.a!, build.id); // a `build` event in the same turn
    await batched.next((e) => e.event === "build", from);
    const live = batched.seen.slice(from).filter((e) => e.event !== "comment");
    expect(live.map((e) => e.event)).toEqual(["logs", "build"]);
    expect((live[0]!.data as { text: string }[]).map((l) => l.text)).toEqual(["n8", "n9"]);
    expect(batched.seen.some((e) => e.event === "log")).toBe(false);
    await batched.cancel();
    await until(() => builds.followerCount() === 0);
    const resumed = reader(
      await get(`/api/v1/builds/${build.id}/events?log_batch=500`, "a", { "last-event-id": batches[0]!.id! }),
    );
    const rest = await resumed.next((e) => e.event === "logs");
    expect((rest.data as { text: string }[]).map((l) => l.text)).toEqual(["n4", "n5", "n6", "n7", "n8", "n9"]);
    await resumed.cancel();
    await until(() => builds.followerCount() === 0);
    // Anything but a whole number from 1 to 1000 is a 400 problem, and no stream.
    for (const bad of ["log_batch=0", "log_batch=1001", "log_batch=2.5", "log_batch=x", "log_batch="]) {
      const r = await get(`/api/v1/builds/${build.id}/events?${bad}`, "a");
      if (r.status !== 400) await r.body?.cancel();
      expect(`${bad}: ${r.status}`).toBe(`${bad}: 400`);
      expect(r.headers.get("content-type")).toStartWith("application/problem+json");
    }
    expect(builds.followerCount()).toBe(0);
  });

  test("a client that goes away releases its subscription and its stream count", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    const abort = new AbortController();
    const s = reader(await get(`/api/v1/builds/${build.id}/events`, "a", {}, abort.signal));
    await s.next((e) => e.event === "build");
    expect(builds.followerCount()).toBe(1);
    abort.abort();
    await until(() => builds.followerCount() === 0);
    // The limit (3 here) counts open streams only: three more fit, a fourth is refused.
    const open = await Promise.all([1, 2, 3].map(() => get(`/api/v1/builds/${build.id}/events`, "a")));
    expect(open.map((r) => r.status)).toEqual([200, 200, 200]);
    const refused = await get(`/api/v1/projects/${PRJ}/builds/events`, "a");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toStartWith("application/problem+json");
    // Another credential has its own count.
    const other = await get(`/api/v1/projects/${PRJ}/builds/events`, "orgA");
    expect(other.status).toBe(200);
    await Promise.all([...open, other].map((r) => r.body!.cancel()));
    await until(() => builds.followerCount() === 0);
    const again = await get(`/api/v1/builds/${build.id}/events`, "a");
    expect(again.status).toBe(200);
    await again.body!.cancel();
    await until(() => builds.followerCount() === 0);
  });
});

describe("project and organization streams", () => {
  test("build rows of that project or organization only, on create and change", async () => {
    const project = reader(await get(`/api/v1/projects/${PRJ}/builds/events`, "a"));
    const org = reader(await get("/api/v1/orgs/acme/builds/events", "orgA"));
    const elsewhere = reader(await get(`/api/v1/projects/${PRJ_B}/builds/events`, "b"));
    await Bun.sleep(20);
    const mine = builds.create(actors.a!, PRJ, []).build;
    builds.create(actors.b!, PRJ_B, []);
    expect((await project.next((e) => e.event === "build")).data).toMatchObject({ id: mine.id, status: "created" });
    expect((await org.next((e) => e.event === "build")).data).toMatchObject({ id: mine.id, project_id: PRJ });
    builds.cancel(actors.a!, mine.id);
    await project.next(
      (e) => e.event === "build" && (e.data as { cancel_requested_at: unknown }).cancel_requested_at !== null,
    );
    const theirs = await elsewhere.next((e) => e.event === "build");
    expect((theirs.data as { project_id: string }).project_id).toBe(PRJ_B);
    expect(
      project.seen
        .filter((e) => e.event === "build")
        .every((e) => (e.data as { project_id: string }).project_id === PRJ),
    ).toBe(true);
    // Step and log events are for the build's own followers only.
    builds.observed(mine.id, { steps: [], logs: [line("not for lists\n")] });
    await project.next((e) => e.event === "comment", project.seen.length);
    expect(project.seen.some((e) => e.event === "log")).toBe(false);
    await Promise.all([project.cancel(), org.cancel(), elsewhere.cancel()]);
    await until(() => builds.followerCount() === 0);
  });
});

describe("a credential revoked while it follows", () => {
  test("its streams end at the next keep-alive", async () => {
    actors.revoked = { kind: "org-token", tokenId: "tok_gone", orgId: ORG };
    const followed = reader(await get("/api/v1/orgs/acme/builds/events", "revoked"));
    await followed.next((e) => e.event === "comment");
    delete actors.revoked; // the credential no longer authenticates
    await followed.rest(); // ends instead of waiting for builds forever
    await until(() => builds.followerCount() === 0);
  });
});

describe("a project credential following its organization", () => {
  test("sees its own project's builds only, as in the organization's list", async () => {
    const other = "prj_aaaaaaaaaaaaaaaaaaad";
    db.query(
      "INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'q', 600, ?)",
    ).run(other, ORG, new Date().toISOString());
    const followed = reader(await get("/api/v1/orgs/acme/builds/events", "a"));
    await Bun.sleep(20);
    const sibling = builds.create(actors.orgA!, other, []).build;
    const own = builds.create(actors.a!, PRJ, []).build;
    expect((await followed.next((e) => e.event === "build")).data).toMatchObject({ id: own.id, project_id: PRJ });
    expect(followed.seen.some((e) => (e.data as { id?: string } | null)?.id === sibling.id)).toBe(false);
    await followed.cancel();
    await until(() => builds.followerCount() === 0);
  });
});

describe("authorization before any stream", () => {
  test("a foreign build, project or organization answers 404 exactly like a missing one; anonymous 401", async () => {
    const { build } = builds.create(actors.a!, PRJ, []);
    const pairs = [
      [`/api/v1/builds/${build.id}/events`, "/api/v1/builds/bld_aaaaaaaaaaaaaaaaaaaa/events"],
      [`/api/v1/projects/${PRJ}/builds/events`, "/api/v1/projects/prj_aaaaaaaaaaaaaaaaaaaa/builds/events"],
      ["/api/v1/orgs/acme/builds/events", "/api/v1/orgs/nosuch/builds/events"],
    ];
    for (const [foreign, missing] of pairs) {
      const f = await get(foreign!, "orgB");
      const m = await get(missing!, "orgB");
      expect(f.status).toBe(404);
      expect(f.headers.get("content-type")).toStartWith("application/problem+json");
      const mask = (t: string) => t.replace(/\b[a-z]{3}_[a-z2-7]{20}\b|acme|nosuch/g, "<id>");
      expect(mask(await f.text())).toBe(mask(await m.text()));
      expect((await get(foreign!, "nobody")).status).toBe(401);
    }
    expect(builds.followerCount()).toBe(0);
  });
});
