/**
 * @module api/connect/rpc.test
 * The depot RPCs no other test called, each through the real HTTP stack (Bun.serve on loopback,
 * createApp, the Connect handlers) in both codecs, on a real SQLite file with the real identity,
 * builds, CA and registry services; only the builder service and the cache reset are narrow
 * fakes (no build here reaches a builder). Then the Connect error paths: a wrong content type,
 * an unknown platform, FinishBuild without a result, oversized messages, a page token the server
 * never gave, a status stream its client abandons in the middle of a message, and a FinishLogin
 * its client stops waiting for.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Server } from "bun";
import type { Actor } from "../../auth/actor.ts";
import { auditServiceFactory } from "../../auth/audit.ts";
import { authServiceFactory } from "../../auth/index.ts";
import { deviceLoginServiceFactory } from "../../auth/device-login.ts";
import { ciTokenVerifierFactory, oidcKeysFactory, parseAllowInternal } from "../../auth/oidc/index.ts";
import { sessionsServiceFactory } from "../../auth/sessions.ts";
import { tokensServiceFactory } from "../../auth/api-tokens.ts";
import { trustServiceFactory } from "../../auth/ci-trusts.ts";
import { buildsServiceFactory, type BuildsService } from "../../builds/index.ts";
import { applyMigrations, openDatabase } from "../../db/index.ts";
import { HealthRegistry } from "../../health/registry.ts";
import { which } from "../../host/run.ts";
import { createLogger, silentLogger } from "../../log/logger.ts";
import { MetricsRegistry } from "../../metrics/registry.ts";
import { quotasServiceFactory, quotaUsageOf } from "../../orgs/quotas.ts";
import { egressServiceFactory } from "../../egress/service.ts";
import { orgsServiceFactory } from "../../orgs/service.ts";
import { pkiServiceFactory } from "../../pki/index.ts";
import { projectsServiceFactory } from "../../projects/service.ts";
import { PULL_TOKEN_PREFIX } from "../../registry/service.ts";
import { registryServiceFactory, type RegistryService } from "../../registry/index.ts";
import { createSealer } from "../../secrets/index.ts";
import {
  create,
  fromBinary,
  fromJson as fromJsonValue,
  toBinary,
  toJson as toJsonValue,
  type DescMessage,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { BuilderPlatform, METHODS, type MethodName } from "../../wire/depot.ts";
import { createApp } from "../app.ts";
import { allowHoldingOpen } from "../context.ts";
import { identityContext, type IdentityServices } from "../identity.ts";
import { integrationSuite } from "../../../test/support/integration.ts";
import { COMPRESS_MIN_BYTES, connectRoutes } from "./routes.ts";

const MIB = 1024 * 1024;
/** ReportStatusStream's per-message limit here (serve's is 16 MiB): small, so a test can pass it. */
const MAX_MESSAGE = 64 * 1024;
const PUBLIC_URL = "https://slipway.test:8443";
const CODECS = ["proto", "json"] as const;
type Codec = (typeof CODECS)[number];
const decoder = new TextDecoder();

let dir: string;
let db: Database;
let server: Server<undefined>;
let base: string;
let builds: BuildsService;
let registry: RegistryService;
let identity: IdentityServices;
let sealer: Awaited<ReturnType<typeof createSealer>>;
/** Added to the device logins' clock: a test moves their time forward without waiting. */
let deviceClockSkewMs = 0;
const logLines: { level: string; msg: string }[] = [];
const cacheResets: { projectId: string; actor: Actor }[] = [];
const ids = { A: "", B: "", p1: "", q1: "", ownerA: "" };
const secrets = { ownerA: "", userA: "", ownerB: "", both: "", tokP1: "" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-connect-rpc-"));
  db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const log = createLogger({
    level: "debug",
    write: (line) => logLines.push(JSON.parse(line) as { level: string; msg: string }),
  });
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });
  const quotas = quotasServiceFactory({
    db,
    audit,
    defaults: {
      max_projects: 100,
      max_builder_cpus: 16,
      max_builder_memory_mb: 32768,
      max_cache_size_gb: 200,
      max_running_builders: 8,
    },
    usage: quotaUsageOf(() => ({ projects })),
  });
  const projects = projectsServiceFactory({ db, audit, quotas, orgs });
  const tokens = tokensServiceFactory({ db, audit });
  const auth = authServiceFactory({
    tokens,
    users: orgs,
    projects,
    runnerHosts: egressServiceFactory({ db, audit, applianceHosts: ["localhost"], extraAllow: [] }),
  });
  const allowInternal = parseAllowInternal("127.0.0.0/8");
  identity = {
    auth,
    audit,
    sessions: sessionsServiceFactory({ db, audit, users: orgs }),
    orgs,
    projects,
    quotas,
    tokens,
    trust: trustServiceFactory({
      db,
      audit,
      tokens,
      projects,
      allowInternal,
      verifier: ciTokenVerifierFactory({ keys: oidcKeysFactory({ allowInternal }) }),
    }),
    deviceLogins: deviceLoginServiceFactory({ db, audit, tokens, now: () => new Date(Date.now() + deviceClockSkewMs) }),
    publicUrl: PUBLIC_URL,
  };

  const users: Record<string, string> = {};
  for (const name of ["ownerA", "userA", "ownerB", "both"] as const) {
    users[name] = orgs.createUser({ username: name }, "system:test").id;
    secrets[name] = tokens.create(
      { kind: "user", name: "t", expiresAt: null, userId: users[name]!, createdBy: users[name]! },
      "system:test",
    ).token;
  }
  const system: Actor = {
    kind: "user",
    userId: users.ownerA!,
    username: "ownerA",
    isAdmin: false,
    tokenId: null,
    memberships: {},
  };
  const A = orgs.create({ slug: "org-a", name: "A", owner: "ownerA" }, system);
  const B = orgs.create({ slug: "org-b", name: "B", owner: "ownerB" }, system);
  orgs.addMember(A.id, "userA", "user", system);
  orgs.addMember(A.id, "both", "user", system);
  orgs.addMember(B.id, "both", "user", system);
  const p1 = projects.create(A.id, { name: "p1" }, system);
  const q1 = projects.create(B.id, { name: "q1" }, system);
  secrets.tokP1 = tokens.create(
    { kind: "project", name: "p1", expiresAt: null, orgId: A.id, projectId: p1.id, createdBy: null },
    "system:test",
  ).token;
  Object.assign(ids, { A: A.id, B: B.id, p1: p1.id, q1: q1.id, ownerA: users.ownerA! });

  sealer = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
  const pki = pkiServiceFactory({ db, sealer, applianceId: "test" });
  await pki.ensureHierarchy(["server", "build-client"]);
  builds = buildsServiceFactory({
    db,
    projects: identity.projects,
    tokens: identity.tokens,
    pki,
    // Builders never become ready here: a connection stays pending, which is all these RPCs need.
    builders: { request: async () => ({ state: "starting" }), release: () => {}, ready: () => null },
    router: { buildEnded: () => {} },
    audit,
    log,
    publicUrl: PUBLIC_URL,
    buildEndpoint: { endpoint: "tcp://slipway.test:8444", serverName: "slipway.test" },
    healthTimeoutMs: 60_000,
    logMaxBytes: MIB,
  });
  const ctx = identityContext(identity, (r) => server?.requestIP(r)?.address ?? null);
  registry = registryServiceFactory({
    db,
    projects: identity.projects,
    builds,
    sealer,
    log: silentLogger,
    dataDir: dir,
    settings: {
      enabled: true,
      binary: which("docker-registry") ?? join(dir, "no-registry-here"),
      retention_days: 7,
      gc_interval_hours: 0,
    },
    publicHost: "slipway.test:8443",
    builderHost: "registry.slipway.internal:8443",
    actorOf: (r) => ctx.actorOf(r),
  });
  await registry.start();
  const app = createApp({
    log,
    health: new HealthRegistry(),
    metrics: new MetricsRegistry(),
    auth,
    version: "test",
    options: { maxBodyBytes: MIB, hstsMaxAgeSeconds: null, metricsBearerToken: null },
    clientAddress: (r) => server?.requestIP(r)?.address ?? null,
    identity,
    plugins: [
      connectRoutes({
        ctx,
        builds,
        resetCache: async (projectId, actor) => void cacheResets.push({ projectId, actor }),
        log,
        defaultPlatform: "linux/amd64",
        maxUnaryBytes: MIB,
        maxMessageBytes: MAX_MESSAGE,
        registry,
        imageExport: () => false,
      }),
    ],
  });
  // As serve does: a held-open request may lift the idle timeout.
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req, srv) => {
      allowHoldingOpen(req, () => srv.timeout(req, 0));
      return app.handle(req);
    },
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server?.stop(true);
  await registry?.stop();
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Messages in this test are plain objects (a oneof's chosen field set by its name, unset
 * optional fields and messages absent), converted to and from the generated types here. */
type Msg = Record<string, unknown>;

function toInit(desc: DescMessage, plain: Msg): Msg {
  const init: Msg = {};
  for (const f of desc.fields) {
    const v = plain[f.localName];
    if (v === undefined) continue;
    const value =
      f.fieldKind === "message"
        ? toInit(f.message, v as Msg)
        : f.fieldKind === "list" && f.listKind === "message"
          ? (v as Msg[]).map((x) => toInit(f.message, x))
          : v;
    if (f.oneof) init[f.oneof.localName] = { case: f.localName, value };
    else init[f.localName] = value;
  }
  return init;
}

function toPlain(desc: DescMessage, msg: Message): Msg {
  const out: Msg = {};
  const m = msg as unknown as Msg;
  for (const f of desc.fields) {
    if (f.oneof) {
      const chosen = m[f.oneof.localName] as { case?: string; value?: unknown };
      if (chosen.case === f.localName)
        out[f.localName] = f.fieldKind === "message" ? toPlain(f.message, chosen.value as Message) : chosen.value;
      continue;
    }
    const v = m[f.localName];
    if (v === undefined) continue;
    if (f.fieldKind === "message") out[f.localName] = toPlain(f.message, v as Message);
    else if (f.fieldKind === "list" && f.listKind === "message")
      out[f.localName] = (v as Message[]).map((x) => toPlain(f.message, x));
    else if (f.fieldKind === "map") out[f.localName] = { ...(v as Msg) };
    else out[f.localName] = v;
  }
  return out;
}

const encode = (desc: DescMessage, plain: Msg) => toBinary(desc, create(desc, toInit(desc, plain)));
const decode = (desc: DescMessage, bytes: Uint8Array) => toPlain(desc, fromBinary(desc, bytes));
const toJson = (desc: DescMessage, plain: Msg) => toJsonValue(desc, create(desc, toInit(desc, plain)));
const fromJson = (desc: DescMessage, json: unknown) => toPlain(desc, fromJsonValue(desc, json as JsonValue));

type Answer = { status: number; msg: Msg; error: { code: string; message: string } | null; text: string };

/** One unary call in `codec`; the answer decoded with the same codec. */
async function call(codec: Codec, name: MethodName, input: Msg, bearer: string | null): Promise<Answer> {
  const m = METHODS[name];
  const r = await fetch(`${base}${m.path}`, {
    method: "POST",
    headers: {
      "content-type": codec === "proto" ? "application/proto" : "application/json",
      "connect-protocol-version": "1",
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    },
    body: codec === "proto" ? encode(m.input, input) : JSON.stringify(toJson(m.input, input)),
  });
  const bytes = new Uint8Array(await r.arrayBuffer());
  const text = decoder.decode(bytes);
  if (r.status !== 200) {
    expect(r.headers.get("content-type")).toBe("application/json");
    return { status: r.status, msg: {}, error: JSON.parse(text) as { code: string; message: string }, text };
  }
  expect(r.headers.get("content-type")).toBe(codec === "proto" ? "application/proto" : "application/json");
  return {
    status: 200,
    msg: codec === "proto" ? decode(m.output, bytes) : fromJson(m.output, JSON.parse(text)),
    error: null,
    text,
  };
}

function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

const streamMessage = (codec: Codec, name: MethodName, msg: Msg) =>
  envelope(
    0,
    codec === "proto"
      ? encode(METHODS[name].input, msg)
      : new TextEncoder().encode(JSON.stringify(toJson(METHODS[name].input, msg))),
  );

/** A streamed reply's envelopes: messages decoded with `codec`, then the end-of-stream JSON. */
function parseStream(
  codec: Codec,
  name: MethodName,
  bytes: Uint8Array,
): { messages: Msg[]; end: { error?: { code: string; message: string } } | null } {
  const messages: Msg[] = [];
  let end = null;
  for (let at = 0; at < bytes.length; ) {
    const flags = bytes[at]!;
    const len = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    const payload = bytes.subarray(at + 5, at + 5 + len);
    if (flags & 0x02) end = JSON.parse(decoder.decode(payload));
    else
      messages.push(
        codec === "proto"
          ? decode(METHODS[name].output, payload)
          : fromJson(METHODS[name].output, JSON.parse(decoder.decode(payload))),
      );
    at += 5 + len;
  }
  return { messages, end };
}

async function streamCall(codec: Codec, name: MethodName, body: Uint8Array, bearer: string | null) {
  const r = await fetch(`${base}${METHODS[name].path}`, {
    method: "POST",
    headers: {
      "content-type": codec === "proto" ? "application/connect+proto" : "application/connect+json",
      "connect-protocol-version": "1",
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    },
    body,
  });
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toBe(
    codec === "proto" ? "application/connect+proto" : "application/connect+json",
  );
  return parseStream(codec, name, new Uint8Array(await r.arrayBuffer()));
}

/** A build on p1 made over CreateBuild by ownerA: its id and build token. */
async function newBuild(codec: Codec): Promise<{ buildId: string; buildToken: string }> {
  const r = await call(codec, "createBuild", { projectId: ids.p1, options: [] }, secrets.ownerA);
  expect(r.status).toBe(200);
  return { buildId: r.msg.buildId as string, buildToken: r.msg.buildToken as string };
}

const ownerAActor = (): Actor => identity.auth.userActor(ids.ownerA, null);
const statusOf = (buildId: string) =>
  (db.query("SELECT status FROM builds WHERE id = ?").get(buildId) as { status: string }).status;
const at = new Date("2026-11-22T10:00:00.250Z");
const statusBatch = (buildId: string, text: string): Msg => ({
  buildId,
  statuses: [
    {
      vertexes: [
        {
          digest: `sha256:${text}`,
          name: `RUN ${text}`,
          cached: false,
          started: { seconds: BigInt((at.getTime() / 1000) | 0), nanos: 250_000_000 },
        },
      ],
      logs: [{ vertex: `sha256:${text}`, stream: 1n, msg: new TextEncoder().encode(`${text}\n`) }],
    },
  ],
});

/** Polls `cond` until it holds; fails with `what` after a generous deadline. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe.each(CODECS)("Connect RPCs over HTTP, %s codec", (codec) => {
  test("GetBuild answers the build's id, project and page; another tenant's build is answered like a missing one", async () => {
    const { buildId, buildToken } = await newBuild(codec);
    const expected = { buildId, projectId: ids.p1, buildUrl: `${PUBLIC_URL}/builds/${buildId}` };
    expect((await call(codec, "getBuild", { buildId }, buildToken)).msg).toEqual(expected);
    expect((await call(codec, "getBuild", { buildId }, secrets.userA)).msg).toEqual(expected);
    const foreign = await call(codec, "getBuild", { buildId }, secrets.ownerB);
    const missing = await call(codec, "getBuild", { buildId: "bld_missing" }, secrets.ownerB);
    expect([foreign.status, foreign.error]).toEqual([404, { code: "not_found", message: "no such build" }]);
    expect(foreign.text).toBe(missing.text);
    expect((await call(codec, "getBuild", { buildId }, null)).error?.code).toBe("unauthenticated");
    expect((await call(codec, "getBuild", { buildId: "" }, buildToken)).error).toEqual({
      code: "invalid_argument",
      message: "buildId is required",
    });
  });

  test("ReportBuildContext is accepted for the build itself, refused for another tenant exactly as for a missing build", async () => {
    const { buildId, buildToken } = await newBuild(codec);
    const context = { buildId, dockerfiles: [{ target: "app", filename: "Dockerfile", contents: "FROM scratch\n" }] };
    const r = await call(codec, "reportBuildContext", context, buildToken);
    expect([r.status, r.msg]).toEqual([200, {}]);
    const foreign = await call(codec, "reportBuildContext", context, secrets.ownerB);
    expect([foreign.status, foreign.error?.code]).toEqual([404, "not_found"]);
    expect(foreign.text).toBe(
      (await call(codec, "reportBuildContext", { ...context, buildId: "bld_missing" }, secrets.ownerB)).text,
    );
    // Another build's token does not reach this one either.
    const other = await newBuild(codec);
    expect((await call(codec, "reportBuildContext", context, other.buildToken)).error?.code).toBe("not_found");
  });

  test("ReportTimings keeps the steps that carry a stable digest, with their start, duration, cache hit and error", async () => {
    const { buildId, buildToken } = await newBuild(codec);
    const startTime = { seconds: BigInt((at.getTime() / 1000) | 0), nanos: 250_000_000 };
    const r = await call(
      codec,
      "reportTimings",
      {
        buildId,
        buildSteps: [
          { startTime, durationMs: 1500, name: "[1/2] FROM base", stableDigest: "sha256:aaa", cached: true },
          {
            startTime,
            durationMs: 20,
            name: "[2/2] RUN make",
            stableDigest: "sha256:bbb",
            cached: false,
            error: "exit code 2",
          },
          { startTime, durationMs: 5, name: "no digest: not kept", cached: false },
        ],
      },
      buildToken,
    );
    expect([r.status, r.msg]).toEqual([200, {}]);
    expect(builds.steps(ownerAActor(), buildId)).toEqual([
      {
        digest: "sha256:aaa",
        name: "[1/2] FROM base",
        cached: 1,
        started_at: at.toISOString(),
        completed_at: new Date(at.getTime() + 1500).toISOString(),
        error: null,
      },
      {
        digest: "sha256:bbb",
        name: "[2/2] RUN make",
        cached: 0,
        started_at: at.toISOString(),
        completed_at: new Date(at.getTime() + 20).toISOString(),
        error: "exit code 2",
      },
    ]);
    expect((await call(codec, "reportTimings", { buildId, buildSteps: [] }, secrets.ownerB)).error?.code).toBe(
      "not_found",
    );
  });

  test("ReportStatusStream keeps every batch of the stream and answers one empty message, then the end of the stream", async () => {
    const { buildId, buildToken } = await newBuild(codec);
    const body = new Uint8Array([
      ...streamMessage(codec, "reportStatusStream", statusBatch(buildId, "one")),
      ...streamMessage(codec, "reportStatusStream", statusBatch(buildId, "two")),
    ]);
    const reply = await streamCall(codec, "reportStatusStream", body, buildToken);
    expect(reply).toEqual({ messages: [{}], end: {} });
    expect(builds.steps(ownerAActor(), buildId).map((s) => [s.digest, s.name, s.started_at])).toEqual([
      ["sha256:one", "RUN one", at.toISOString()],
      ["sha256:two", "RUN two", at.toISOString()],
    ]);
    expect(builds.logs(ownerAActor(), buildId).text).toBe("one\ntwo\n");
    // Another tenant's stream ends with not_found and writes nothing.
    const foreign = await streamCall(
      codec,
      "reportStatusStream",
      streamMessage(codec, "reportStatusStream", statusBatch(buildId, "foreign")),
      secrets.ownerB,
    );
    expect(foreign).toEqual({ messages: [], end: { error: { code: "not_found", message: "no such build" } } });
    expect(builds.logs(ownerAActor(), buildId).text).toBe("one\ntwo\n");
  });

  test("ListOrganizations lists exactly the organizations the credential belongs to", async () => {
    const orgsOf = async (secret: string) =>
      ((await call(codec, "listOrganizations", {}, secret)).msg.organizations as Msg[]).map((o) => [o.orgId, o.name]);
    expect(await orgsOf(secrets.ownerA)).toEqual([[ids.A, "A"]]);
    expect(await orgsOf(secrets.both)).toEqual([
      [ids.A, "A"],
      [ids.B, "B"],
    ]);
    expect(await orgsOf(secrets.tokP1)).toEqual([]); // a project token belongs to a project, not an organization
    const first = ((await call(codec, "listOrganizations", {}, secrets.ownerB)).msg.organizations as Msg[])[0]!;
    const created = (db.query("SELECT created_at FROM organizations WHERE id = ?").get(ids.B) as { created_at: string })
      .created_at;
    expect(first.createdAt).toEqual({
      seconds: BigInt(Math.floor(Date.parse(created) / 1000)),
      nanos: (Date.parse(created) % 1000) * 1_000_000,
    });
    const anonymous = await call(codec, "listOrganizations", {}, null);
    expect([anonymous.status, anonymous.error?.code]).toEqual([401, "unauthenticated"]);
  });

  test("ResetProjectCache resets for an owner and names the project; a member is refused, another tenant gets not_found", async () => {
    cacheResets.length = 0;
    const r = await call(codec, "resetProjectCache", { projectId: ids.p1 }, secrets.ownerA);
    expect([r.status, r.msg]).toEqual([200, { name: "p1", orgName: "A" }]);
    expect(cacheResets.map((c) => [c.projectId, c.actor.kind === "user" ? c.actor.username : c.actor.kind])).toEqual([
      [ids.p1, "ownerA"],
    ]);
    const member = await call(codec, "resetProjectCache", { projectId: ids.p1 }, secrets.userA);
    expect([member.status, member.error?.code]).toEqual([403, "permission_denied"]);
    expect((await call(codec, "resetProjectCache", { projectId: ids.p1 }, secrets.tokP1)).error?.code).toBe(
      "permission_denied",
    );
    const foreign = await call(codec, "resetProjectCache", { projectId: ids.q1 }, secrets.ownerA);
    expect([foreign.status, foreign.error]).toEqual([404, { code: "not_found", message: "no such project" }]);
    expect(foreign.text).toBe(
      (await call(codec, "resetProjectCache", { projectId: "prj_missing" }, secrets.ownerA)).text,
    );
    expect(cacheResets).toHaveLength(1); // the refusals reset nothing
  });

  test("StartLogin then FinishLogin: once approved, the stream carries a user token that works; the code is good once; an expired one is gone", async () => {
    const started = await call(codec, "startLogin", {}, null);
    expect(started.status).toBe(200);
    const { id, approveUrl } = started.msg as { id: string; approveUrl: string };
    const userCode = new URL(approveUrl).hash.slice(1);
    identity.deviceLogins.approve(userCode, ownerAActor() as Extract<Actor, { kind: "user" }>, "127.0.0.1");
    const finished = await streamCall(codec, "finishLogin", streamMessage(codec, "finishLogin", { id }), null);
    expect(finished.end).toEqual({});
    expect(finished.messages).toHaveLength(1);
    const token = finished.messages[0]!.token as string;
    expect(token).toMatch(/^slw_u_/);
    expect(
      ((await call(codec, "listOrganizations", {}, token)).msg.organizations as Msg[]).map((o) => o.orgId),
    ).toEqual([ids.A]);
    // Used once: the same id again is gone, and says so in the end frame.
    const again = await streamCall(codec, "finishLogin", streamMessage(codec, "finishLogin", { id }), null);
    expect(again.messages).toEqual([]);
    expect(again.end?.error?.code).toBe("not_found");
    // A code past its ten minutes: gone, even approved.
    const late = (await call(codec, "startLogin", {}, null)).msg as { id: string; approveUrl: string };
    identity.deviceLogins.approve(
      new URL(late.approveUrl).hash.slice(1),
      ownerAActor() as Extract<Actor, { kind: "user" }>,
      "127.0.0.1",
    );
    deviceClockSkewMs = 10 * 60_000 + 1000;
    try {
      const expired = await streamCall(
        codec,
        "finishLogin",
        streamMessage(codec, "finishLogin", { id: late.id }),
        null,
      );
      expect(expired).toEqual({
        messages: [],
        end: { error: { code: "not_found", message: expect.stringContaining("expired") } },
      });
    } finally {
      deviceClockSkewMs = 0;
    }
    const noId = await streamCall(codec, "finishLogin", streamMessage(codec, "finishLogin", {}), null);
    expect(noId.end?.error).toEqual({ code: "invalid_argument", message: "id is required" });
  });
});

integrationSuite(
  "GetPullInfo with the appliance's registry (Debian's docker-registry)",
  which("docker-registry") ? null : "docker-registry is not installed (apt-get install docker-registry)",
  () => {
    for (const codec of CODECS) {
      test(`${codec}: a read-only pull credential for the build's image; audited; nothing for another tenant`, async () => {
        await until("the registry to be available", () => registry.available());
        const { buildId, buildToken } = await newBuild(codec);
        const r = await call(codec, "getPullInfo", { buildId }, secrets.ownerA);
        expect(r.status).toBe(200);
        expect(r.msg).toMatchObject({
          reference: `slipway.test:8443/${ids.p1}:${buildId}`,
          username: "x-token",
          options: [],
        });
        expect(r.msg.saveForLoad ?? false).toBe(false);
        expect(r.msg.password as string).toStartWith(PULL_TOKEN_PREFIX);
        const audited = db
          .query("SELECT actor, target FROM audit_log WHERE action = 'registry.pull_token' AND details LIKE ?")
          .all(`%${buildId}%`) as { actor: string; target: string }[];
        expect(audited).toEqual([{ actor: `user:${ids.ownerA}`, target: ids.p1 }]);
        expect((await call(codec, "getPullInfo", { buildId }, buildToken)).status).toBe(200);
        const foreign = await call(codec, "getPullInfo", { buildId }, secrets.ownerB);
        expect([foreign.status, foreign.error]).toEqual([404, { code: "not_found", message: "no such build" }]);
      });
    }
  },
);

describe("Connect error paths over HTTP", () => {
  const post = (path: string, headers: Record<string, string>, body: string) =>
    fetch(`${base}${path}`, { method: "POST", headers: { "connect-protocol-version": "1", ...headers }, body });

  test("a content type that is not Connect's is refused invalid_argument, as Connect error JSON without internals", async () => {
    const cases: [MethodName, string][] = [
      ["getBuild", "text/plain"],
      ["getBuild", "application/connect+proto"], // a stream's type on a unary method
      ["reportStatusStream", "application/proto"], // a unary type on a stream
      ["finishLogin", "application/json"],
    ];
    for (const [name, type] of cases) {
      const r = await post(
        METHODS[name].path,
        { "content-type": type, authorization: `Bearer ${secrets.ownerA}` },
        "{}",
      );
      expect({ name, type, status: r.status, contentType: r.headers.get("content-type") }).toEqual({
        name,
        type,
        status: 400,
        contentType: "application/json",
      });
      const body = (await r.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(["code", "message"]);
      expect(body.code).toBe("invalid_argument");
      expect(body.message as string).toStartWith("Content-Type must be application/");
    }
  });

  test("GetBuildKitConnection for an unknown platform is invalid_argument; the build gets no certificate and is still active", async () => {
    for (const codec of CODECS) {
      const { buildId, buildToken } = await newBuild(codec);
      const r = await call(codec, "getBuildKitConnection", { buildId, platform: 7 }, buildToken);
      expect([r.status, r.error]).toEqual([400, { code: "invalid_argument", message: "unknown platform 7" }]);
      // A name the JSON codec does not know is refused by the codec.
      const named = await post(
        METHODS.getBuildKitConnection.path,
        { "content-type": "application/json", authorization: `Bearer ${buildToken}` },
        JSON.stringify({ buildId, platform: "BUILDER_PLATFORM_RISCV64" }),
      );
      expect([named.status, ((await named.json()) as { code: string }).code]).toEqual([400, "invalid_argument"]);
      expect(
        (db.query("SELECT count(*) AS n FROM build_certificates WHERE build_id = ?").get(buildId) as { n: number }).n,
      ).toBe(0);
      expect(statusOf(buildId)).toBe("created");
      // A known platform is served (pending: the builder is starting).
      expect(
        (await call(codec, "getBuildKitConnection", { buildId, platform: BuilderPlatform.AMD64 }, buildToken)).msg
          .pending,
      ).toEqual({ waitMs: 1000 });
    }
  });

  test("FinishBuild without a result is invalid_argument and ends nothing; with one, it ends the build", async () => {
    for (const codec of CODECS) {
      const { buildId, buildToken } = await newBuild(codec);
      const r = await call(codec, "finishBuild", { buildId }, buildToken);
      expect([r.status, r.error]).toEqual([
        400,
        { code: "invalid_argument", message: "one of success, error or canceled is required" },
      ]);
      expect(statusOf(buildId)).toBe("created");
      expect((await call(codec, "finishBuild", { buildId, error: { error: "exit code 1" } }, buildToken)).status).toBe(
        200,
      );
      expect(db.query("SELECT status, error FROM builds WHERE id = ?").get(buildId)).toEqual({
        status: "failed",
        error: "exit code 1",
      });
    }
  });

  test("ListBuilds with a page token the server never gave is invalid_argument, not an internal error", async () => {
    const errorsBefore = logLines.filter((l) => l.level === "error").length;
    for (const codec of CODECS) {
      for (const pageToken of ["garbage", "2026-11-22T10:00:00.000Z|", "a|b|c"]) {
        const r = await call(codec, "listBuilds", { projectId: ids.p1, pageSize: 2, pageToken }, secrets.ownerA);
        expect({ pageToken, status: r.status, code: r.error?.code }).toEqual({
          pageToken,
          status: 400,
          code: "invalid_argument",
        });
      }
      // The tokens it does give walk the project's builds.
      const first = await call(codec, "listBuilds", { projectId: ids.p1, pageSize: 1 }, secrets.ownerA);
      const second = await call(
        codec,
        "listBuilds",
        { projectId: ids.p1, pageSize: 1, pageToken: first.msg.nextPageToken },
        secrets.ownerA,
      );
      expect(second.status).toBe(200);
      expect((second.msg.builds as Msg[])[0]!.id).not.toBe((first.msg.builds as Msg[])[0]!.id);
    }
    expect(logLines.filter((l) => l.level === "error").length).toBe(errorsBefore);
  });

  test("an oversized unary body is resource_exhausted; an oversized stream message ends the stream so, keeping what came before it", async () => {
    const { buildId, buildToken } = await newBuild("proto");
    const big = await post(
      METHODS.reportBuildContext.path,
      { "content-type": "application/json", authorization: `Bearer ${buildToken}` },
      JSON.stringify({ buildId, dockerfiles: [{ contents: "x".repeat(MIB) }] }),
    );
    expect([big.status, ((await big.json()) as { code: string }).code]).toEqual([429, "resource_exhausted"]);
    const huge = statusBatch(buildId, "huge");
    ((huge.statuses as Msg[])[0]!.logs as Msg[])[0]!.msg = new Uint8Array(MAX_MESSAGE + 1);
    const body = new Uint8Array([
      ...streamMessage("proto", "reportStatusStream", statusBatch(buildId, "small")),
      ...streamMessage("proto", "reportStatusStream", huge),
    ]);
    const reply = await streamCall("proto", "reportStatusStream", body, buildToken);
    expect(reply.messages).toEqual([]);
    expect(reply.end?.error?.code).toBe("resource_exhausted");
    expect(reply.end?.error?.message).toContain(`larger than configured readMaxBytes ${MAX_MESSAGE}`);
    expect(builds.steps(ownerAActor(), buildId).map((s) => s.digest)).toEqual(["sha256:small"]);
    expect(builds.logs(ownerAActor(), buildId).text).toBe("small\n");
  });

  test("a status stream whose client goes away mid-message: the handler ends, nothing stays pending, what arrived is kept and the build goes on", async () => {
    const { buildId, buildToken } = await newBuild("proto");
    const errorsBefore = logLines.filter((l) => l.level === "error").length;
    const endedBefore = logLines.filter((l) => l.msg.startsWith("status stream")).length;
    const first = streamMessage("proto", "reportStatusStream", statusBatch(buildId, "arrived"));
    const second = streamMessage("proto", "reportStatusStream", statusBatch(buildId, "cut"));
    const partial = new Uint8Array([...first, ...second.subarray(0, second.length - 4)]);
    // A raw HTTP/1.1 client, so that going away is a closed socket in the middle of a chunked body.
    const socket = tcpConnect(server.port!, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    socket.write(
      `POST ${METHODS.reportStatusStream.path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/connect+proto\r\nconnect-protocol-version: 1\r\nauthorization: Bearer ${buildToken}\r\ntransfer-encoding: chunked\r\n\r\n`,
    );
    socket.write(`${partial.length.toString(16)}\r\n`);
    socket.write(partial);
    socket.write("\r\n");
    await until("the first batch to be recorded", () => builds.steps(ownerAActor(), buildId).length === 1);
    expect(server.pendingRequests).toBeGreaterThanOrEqual(1); // the stream is open, waiting for the rest
    socket.destroy();
    await until(
      "the status stream handler to end",
      () => logLines.filter((l) => l.msg.startsWith("status stream")).length > endedBefore,
    );
    await until("no request to be pending", () => server.pendingRequests === 0);
    expect(logLines.filter((l) => l.level === "error").length).toBe(errorsBefore); // no internal error logged
    expect(builds.steps(ownerAActor(), buildId).map((s) => s.digest)).toEqual(["sha256:arrived"]);
    expect(builds.logs(ownerAActor(), buildId).text).toBe("arrived\n");
    // The build is as consistent as before: still active, it reports and finishes normally.
    expect(statusOf(buildId)).toBe("created");
    expect((await call("proto", "reportBuildHealth", { buildId }, buildToken)).msg).toEqual({});
    const again = await streamCall(
      "proto",
      "reportStatusStream",
      streamMessage("proto", "reportStatusStream", statusBatch(buildId, "later")),
      buildToken,
    );
    expect(again).toEqual({ messages: [{}], end: {} });
    expect((await call("proto", "finishBuild", { buildId, success: {} }, buildToken)).status).toBe(200);
    expect(statusOf(buildId)).toBe("finished");
    expect(builds.logs(ownerAActor(), buildId).text).toBe("arrived\nlater\n");
  });
});

describe("GetPullInfo without a registry", () => {
  test("is failed_precondition, saying the registry is not available, after the tenant check", async () => {
    const bare = registryServiceFactory({
      db,
      projects: identity.projects,
      builds,
      sealer,
      log: silentLogger,
      dataDir: join(dir, "bare"),
      settings: { enabled: true, binary: join(dir, "no-registry-here"), retention_days: 7, gc_interval_hours: 0 },
      publicHost: "slipway.test:8443",
      builderHost: "registry.slipway.internal:8443",
      actorOf: () => Promise.reject(new Error("unused")),
    });
    await bare.start();
    const routes = connectRoutes({
      ctx: identityContext(identity, () => "127.0.0.1"),
      builds,
      resetCache: async () => {},
      log: silentLogger,
      defaultPlatform: "linux/amd64",
      maxUnaryBytes: MIB,
      maxMessageBytes: MAX_MESSAGE,
      registry: bare,
      imageExport: () => false,
    });
    const { buildId } = await newBuild("json");
    const ask = (secret: string) =>
      routes.handle(
        new Request(`http://localhost${METHODS.getPullInfo.path}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${secret}` },
          body: JSON.stringify({ buildId }),
        }),
      );
    const r = await ask(secrets.ownerA);
    const body = (await r.json()) as { code: string; message: string };
    expect([r.status, body.code]).toEqual([400, "failed_precondition"]);
    expect(body.message).toContain("the appliance's registry is not available");
    const foreign = await ask(secrets.ownerB);
    expect([foreign.status, ((await foreign.json()) as { code: string }).code]).toEqual([404, "not_found"]);
  });
});

describe("FinishLogin whose client goes away while it waits", () => {
  test("the wait ends quietly: no request stays pending, nothing is logged as an error, the login can still be picked up", async () => {
    const started = (await call("json", "startLogin", {}, null)).msg as { id: string; approveUrl: string };
    const userCode = new URL(started.approveUrl).hash.slice(1);
    const polls = () =>
      (
        db.query("SELECT last_poll_at FROM device_logins WHERE user_code = ?").get(userCode) as {
          last_poll_at: string | null;
        }
      ).last_poll_at;
    const errorsBefore = logLines.filter((l) => l.level === "error").length;
    const aborter = new AbortController();
    const answer = fetch(`${base}${METHODS.finishLogin.path}`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "connect-protocol-version": "1" },
      body: streamMessage("json", "finishLogin", { id: started.id }),
      signal: aborter.signal,
    }).catch((e: Error) => e);
    await until("the first poll", () => polls() !== null);
    expect(server.pendingRequests).toBe(1);
    aborter.abort();
    expect(await answer).toBeInstanceOf(Error);
    await until("the wait to end", () => logLines.some((l) => l.msg === "login stream closed by the client"));
    await until("no request to be pending", () => server.pendingRequests === 0);
    expect(logLines.filter((l) => l.level === "error").length).toBe(errorsBefore); // nothing failed on the way out
    // The login is still there to be approved and picked up by a new FinishLogin.
    identity.deviceLogins.approve(userCode, ownerAActor() as Extract<Actor, { kind: "user" }>, "127.0.0.1");
    const again = await streamCall(
      "json",
      "finishLogin",
      streamMessage("json", "finishLogin", { id: started.id }),
      null,
    );
    expect(again.end).toEqual({});
    expect(again.messages[0]!.token as string).toMatch(/^slw_u_/);
  }, 60_000);
});

describe("Connect timeouts and gzip over HTTP", () => {
  const gzipped = (b: Uint8Array) => new Uint8Array(Bun.gzipSync(new Uint8Array(b)));

  test("a gzip request body is read; a reply is gzip when the client accepts it; bad or oversized gzip is refused before decoding", async () => {
    const { buildId, buildToken } = await newBuild("proto");
    const headers = {
      "content-type": "application/proto",
      "connect-protocol-version": "1",
      authorization: `Bearer ${buildToken}`,
    };
    const r = await fetch(`${base}${METHODS.getBuild.path}`, {
      method: "POST",
      headers: { ...headers, "content-encoding": "gzip" },
      body: gzipped(encode(METHODS.getBuild.input, { buildId })),
    });
    expect(r.status).toBe(200);
    expect(decode(METHODS.getBuild.output, new Uint8Array(await r.arrayBuffer())).buildId).toBe(buildId);
    // A reply over COMPRESS_MIN_BYTES to a client that accepts gzip comes compressed (fetch is
    // told not to undo it); a smaller one, though over the library's 1 KiB default, does not.
    const list = (pageSize: number) =>
      fetch(`${base}${METHODS.listBuilds.path}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "accept-encoding": "gzip",
          authorization: `Bearer ${secrets.ownerA}`,
        },
        body: JSON.stringify({ projectId: ids.p1, pageSize }),
        decompress: false,
      } as RequestInit);
    for (let i = 0; i < 60; i++) await newBuild("json");
    const small = await list(20);
    const smallBytes = (await small.arrayBuffer()).byteLength;
    expect([small.status, small.headers.get("content-encoding")]).toEqual([200, null]);
    expect(smallBytes > 1024 && smallBytes < COMPRESS_MIN_BYTES).toBe(true);
    const large = await list(60);
    expect([large.status, large.headers.get("content-encoding")]).toEqual([200, "gzip"]);
    const listed = JSON.parse(new TextDecoder().decode(Bun.gunzipSync(new Uint8Array(await large.arrayBuffer())))) as {
      builds: unknown[];
    };
    expect(listed.builds.length).toBeGreaterThan(50);
    // Not gzip at all: invalid_argument. A 2 KiB body that inflates past the 1 MiB limit: resource_exhausted.
    const bad = await fetch(`${base}${METHODS.getBuild.path}`, {
      method: "POST",
      headers: { ...headers, "content-encoding": "gzip" },
      body: "not gzip",
    });
    expect([bad.status, ((await bad.json()) as { code: string }).code]).toEqual([400, "invalid_argument"]);
    const bomb = gzipped(new Uint8Array(2 * MIB));
    expect(bomb.length).toBeLessThan(4096);
    const big = await fetch(`${base}${METHODS.getBuild.path}`, {
      method: "POST",
      headers: { ...headers, "content-encoding": "gzip" },
      body: bomb,
    });
    expect([big.status, ((await big.json()) as { code: string }).code]).toEqual([429, "resource_exhausted"]);
    // An encoding the server does not speak is named, not guessed at.
    const br = await fetch(`${base}${METHODS.getBuild.path}`, {
      method: "POST",
      headers: { ...headers, "content-encoding": "br" },
      body: encode(METHODS.getBuild.input, { buildId }),
    });
    expect([br.status, ((await br.json()) as { code: string }).code]).toEqual([501, "unimplemented"]);
  });

  test("a status stream with gzip messages (Connect-Content-Encoding) is kept; a compressed message inflating past the message limit ends it resource_exhausted", async () => {
    const { buildId, buildToken } = await newBuild("proto");
    const msg = (text: string) =>
      envelope(0x01, gzipped(encode(METHODS.reportStatusStream.input, statusBatch(buildId, text))));
    const send = (body: Uint8Array) =>
      fetch(`${base}${METHODS.reportStatusStream.path}`, {
        method: "POST",
        headers: {
          "content-type": "application/connect+proto",
          "connect-protocol-version": "1",
          "connect-content-encoding": "gzip",
          authorization: `Bearer ${buildToken}`,
        },
        body,
      });
    const ok = await send(new Uint8Array([...msg("zipped-one"), ...msg("zipped-two")]));
    expect(parseStream("proto", "reportStatusStream", new Uint8Array(await ok.arrayBuffer()))).toEqual({
      messages: [{}],
      end: {},
    });
    expect(builds.steps(ownerAActor(), buildId).map((s) => s.digest)).toEqual([
      "sha256:zipped-one",
      "sha256:zipped-two",
    ]);
    // Small on the wire, over the 64 KiB message limit here once inflated.
    const inflated = new Uint8Array(MAX_MESSAGE + 1);
    const over = await send(envelope(0x01, gzipped(inflated)));
    expect(parseStream("proto", "reportStatusStream", new Uint8Array(await over.arrayBuffer())).end?.error?.code).toBe(
      "resource_exhausted",
    );
  });

  test("Connect-Timeout-Ms: a FinishLogin still waiting when it passes ends deadline_exceeded at once; a malformed one is invalid_argument", async () => {
    const started = (await call("json", "startLogin", {}, null)).msg as { id: string };
    const t = performance.now();
    const r = await fetch(`${base}${METHODS.finishLogin.path}`, {
      method: "POST",
      headers: {
        "content-type": "application/connect+json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "300",
      },
      body: streamMessage("json", "finishLogin", { id: started.id }),
    });
    const reply = parseStream("json", "finishLogin", new Uint8Array(await r.arrayBuffer()));
    const elapsed = performance.now() - t;
    expect(reply.messages).toEqual([]);
    expect(reply.end?.error?.code).toBe("deadline_exceeded");
    // The poll interval is 2.5 s: under it, the deadline woke the wait, not the next poll (the
    // rest of the interval is room for a loaded machine).
    expect(elapsed).toBeLessThan(2400);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    const malformed = await fetch(`${base}${METHODS.getBuild.path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "soon",
        authorization: `Bearer ${secrets.ownerA}`,
      },
      body: "{}",
    });
    expect([malformed.status, ((await malformed.json()) as { code: string }).code]).toEqual([400, "invalid_argument"]);
  });
});
