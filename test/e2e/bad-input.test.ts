/**
 * @module test/e2e/bad-input
 * Bad input on every route of the running appliance that takes a body, and on every Connect RPC's
 * request message: malformed JSON (and proto), a value of the wrong type in each field, an unknown
 * field, and oversize strings. The routes come from the appliance itself (`startAppliance`'s
 * mounted routes), so a new one fails here until it has a valid sample body. Every answer is a
 * client error as problem+json (REST) or Connect error JSON (RPC), never a stack trace, and no
 * table changes. Calls are made as the administrator: validation is the only thing in the way.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { METHODS, type RpcMethod } from "../../src/wire/depot.ts";
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { startApplianceWorld, type ApplianceWorld } from "../support/world.ts";

type Ids = ApplianceWorld["ids"];

/** A valid body for every body-taking route: each bad variant is one change away from it. */
const VALID: Record<string, (i: Ids) => Record<string, unknown>> = {
  "POST /api/v1/orgs": () => ({ slug: "new-org", name: "N", owner: "ownerA" }),
  "PATCH /api/v1/orgs/:org": () => ({ name: "A2" }),
  "PUT /api/v1/orgs/:org/builder-runtime": () => ({ oci_runtime: "runsc" }),
  "PUT /api/v1/orgs/:org/quotas": () => ({ max_projects: 5 }),
  "POST /api/v1/orgs/:org/members": () => ({ user: "userB", role: "user" }),
  "PATCH /api/v1/orgs/:org/members/:user": () => ({ role: "owner" }),
  "POST /api/v1/users": () => ({ username: "carol", password: "a long passphrase" }),
  "PATCH /api/v1/users/:user": () => ({ is_admin: true }),
  "POST /api/v1/orgs/:org/projects": () => ({ name: "p9" }),
  "PATCH /api/v1/projects/:id": () => ({ name: "p1b", builder_cpus: 4 }),
  "PUT /api/v1/projects/:id/registry": () => ({ retention_days: 3 }),
  "POST /api/v1/tokens": (i) => ({
    kind: "project",
    name: "n",
    project: i.p1,
    expires_at: new Date(Date.now() + 86_400_000).toISOString(),
  }),
  "POST /api/v1/projects/:id/trust": () => ({
    provider: "github",
    owner: "acme",
    repository: "acme/other",
    audiences: ["https://slipway.example.com"],
  }),
  "POST /api/v1/oidc/exchange": (i) => ({ token: i.ciJwt, project: i.p1 }),
  "PUT /api/v1/orgs/:org/egress/mode": () => ({ mode: "monitor" }),
  "PUT /api/v1/orgs/:org/egress/default": () => ({ action: "deny" }),
  "POST /api/v1/orgs/:org/egress/rules": () => ({ action: "allow", target: "203.0.113.9", ports: "443", comment: "c" }),
  "PATCH /api/v1/orgs/:org/egress/rules/:ref": () => ({
    action: "allow",
    target: "203.0.113.10",
    ports: "443",
    comment: "c",
  }),
  "POST /api/v1/orgs/:org/egress/hosts": () => ({ name: "ci-a2", scopes: ["host"] }),
  "PUT /api/v1/orgs/:org/egress/hosts/:id/scopes": () => ({ scopes: ["host"] }),
  "PUT /api/v1/egress/local-hosts/:id": () => ({ scopes: ["docker:ci"] }),
  "POST /api/v1/egress/agent/status": () => ({ etag: "e1", ok: true, error: null, dns_resolvers: ["192.0.2.53"] }),
  "POST /api/v1/egress/agent/events": () => ({
    events: [
      {
        action: "blocked",
        scope: "host",
        source: "uid:1000",
        dst: "198.51.100.1",
        port: 443,
        protocol: "tcp",
        hostname: null,
        count: 1,
        at: new Date().toISOString(),
      },
    ],
  }),
  "POST /api/v1/auth/login": () => ({ username: "ownerA", password: "a long passphrase for the matrix" }),
  "PUT /api/v1/me/password": () => ({
    current_password: "a long passphrase for the matrix",
    new_password: "another long passphrase here",
  }),
  "POST /api/v1/auth/device": () => ({ client_name: "cli" }),
  "POST /api/v1/auth/device/token": (i) => ({ device_code: i.pendingDeviceCode }),
  "POST /api/v1/auth/device/approve": (i) => ({ user_code: i.pendingUserCode }),
  "POST /api/v1/auth/device/deny": (i) => ({ user_code: i.pendingUserCode }),
};

/** POST/PUT/PATCH routes that read no body, and why: a body sent to them is ignored. */
const NO_BODY: Record<string, string> = {
  "POST /api/v1/builds/:id/cancel": "the build in the path is the whole request",
  "POST /api/v1/projects/:id/cache/reset": "the project in the path is the whole request",
  "POST /api/v1/registry/gc": "collects the whole registry",
  "POST /api/v1/auth/logout": "ends the session in the cookie",
  "POST /api/v1/users/:user/token": "the user in the path is the whole request",
};

/** The credential a body-taking route needs to get past authentication to its own checks. */
const ACTOR_OF: Record<string, "admin" | "agent" | "session"> = {
  "POST /api/v1/egress/agent/status": "agent",
  "POST /api/v1/egress/agent/events": "agent",
  "PUT /api/v1/me/password": "session",
};

const OVERSIZE = "x".repeat(100_000);
const isConnect = (route: string) => route.startsWith("POST /depot.");

let w: ApplianceWorld;
beforeAll(async () => {
  w = await startApplianceWorld();
}, 120_000);
afterAll(async () => await w?.close());

const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;

function concrete(route: string): string {
  const path = route.split(" ")[1]!;
  const i = w.ids;
  const id = path.startsWith("/api/v1/builds/")
    ? i.b1
    : path.startsWith("/api/v1/projects/")
      ? i.p1
      : path.startsWith("/api/v1/tokens/")
        ? i.tokA2
        : path.startsWith("/api/v1/trust/")
          ? i.trustA
          : i.hostA;
  return path
    .replace(":org", i.A)
    .replace(":id", id)
    .replace(":user", "userA")
    .replace(":ref", i.ruleA)
    .replace(":code", i.pendingUserCode);
}

/** A value of another JSON type than `v`. */
function wrongType(v: unknown): unknown {
  if (typeof v === "string") return 12345;
  if (typeof v === "number") return String(v); // the same number, as a string: no silent coercion
  if (typeof v === "boolean") return "true";
  if (Array.isArray(v)) return { not: "an array" };
  if (v === null) return [1];
  return "not an object";
}

/** Every variant of `body` with one value (at any depth, containers too) replaced by `f(value)`;
 * `f` returns undefined to leave a value alone. */
function variants(body: unknown, f: (v: unknown) => unknown, path = ""): { where: string; body: unknown }[] {
  const inner: { where: string; body: unknown }[] = [];
  if (Array.isArray(body))
    inner.push(
      ...body.flatMap((x, n) =>
        variants(x, f, `${path}/${n}`).map((o) => ({
          where: o.where,
          body: body.map((y, m) => (m === n ? o.body : y)),
        })),
      ),
    );
  else if (body && typeof body === "object")
    inner.push(
      ...Object.entries(body).flatMap(([k, x]) =>
        variants(x, f, `${path}/${k}`).map((o) => ({ where: o.where, body: { ...body, [k]: o.body } })),
      ),
    );
  const self = path === "" ? undefined : f(body);
  return self === undefined ? inner : [{ where: path, body: self }, ...inner];
}

interface Verdict {
  status: number;
  ok: boolean;
  why: string;
}

/** Sends one bad request; a verdict of whether the answer is a clean client error that changed nothing. */
async function tryBad(
  route: string,
  actor: "admin" | "agent" | "session",
  path: string,
  body: string | Uint8Array,
  contentType: string,
  stream = false,
): Promise<Verdict> {
  return w.isolated(async () => {
    const before = w.digest();
    const r = await w.call(actor, route.split(" ")[0]!, path, body, contentType);
    const bytes = new Uint8Array(await r.arrayBuffer());
    const text = new TextDecoder().decode(bytes);
    const changed = w.digest() !== before;
    const trace = /\n\s+at \S+ \(|\.ts:\d+:\d+|node_modules/.test(text);
    let status = r.status;
    let shapeOk: boolean;
    if (stream && r.status === 200) {
      // A stream's error rides in its end-of-stream frame, after any message frames.
      const end = endFrame(bytes);
      status = end?.error ? 400 : 200;
      shapeOk =
        typeof end?.error?.code === "string" &&
        typeof end.error.message === "string" &&
        ["invalid_argument", "resource_exhausted", "not_found", "failed_precondition"].includes(end.error.code);
    } else if (isConnect(route)) {
      const j = safeJson(text);
      shapeOk =
        r.headers.get("content-type") === "application/json" &&
        typeof j?.code === "string" &&
        typeof j?.message === "string";
    } else {
      const j = safeJson(text);
      shapeOk =
        r.headers.get("content-type") === "application/problem+json" &&
        typeof j?.type === "string" &&
        j?.status === r.status;
    }
    const clientError = status >= 400 && status < 500;
    const why = [
      !clientError && `status ${r.status}${stream ? ` (stream: ${text.slice(0, 200)})` : ""}`,
      !shapeOk && `not a clean error body: ${r.headers.get("content-type")} ${text.slice(0, 200)}`,
      trace && "a stack trace",
      changed && "a table changed",
    ]
      .filter(Boolean)
      .join("; ");
    return { status, ok: clientError && shapeOk && !trace && !changed, why };
  });
}

function safeJson(text: string): Record<string, unknown> | null {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function endFrame(bytes: Uint8Array): { error?: { code: string; message: string } } | null {
  let at = 0;
  while (at + 5 <= bytes.length) {
    const len = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    if (bytes[at]! & 0x02)
      return safeJson(new TextDecoder().decode(bytes.slice(at + 5, at + 5 + len))) as {
        error?: { code: string; message: string };
      };
    at += 5 + len;
  }
  return null;
}

function envelope(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

describe("REST routes", () => {
  test("every body-taking route has a valid sample; every other write names why it reads no body", () => {
    const writes = w.routes.filter((r) => ["POST", "PUT", "PATCH"].includes(r.method) && !isConnect(key(r)));
    const bodyless = writes
      .filter((r) => !r.takesBody)
      .map(key)
      .sort();
    expect(
      writes
        .filter((r) => r.takesBody)
        .map(key)
        .filter((k) => !VALID[k]),
    ).toEqual([]);
    expect(bodyless).toEqual(Object.keys(NO_BODY).sort());
    expect(Object.keys(VALID).filter((k) => !writes.some((r) => r.takesBody && key(r) === k))).toEqual([]);
  });

  test("the valid samples are accepted (so each bad variant is refused for what it changes)", async () => {
    const refused: string[] = [];
    for (const [route, valid] of Object.entries(VALID)) {
      const status = await w.isolated(
        async () =>
          (
            await w.call(
              ACTOR_OF[route] ?? "admin",
              route.split(" ")[0]!,
              concrete(route),
              JSON.stringify(valid(w.ids)),
            )
          ).status,
      );
      // the administrator has no password (a 400 names that) and some samples reach an absent process.
      if (status >= 400 && !(route === "PUT /api/v1/me/password" && status === 400))
        refused.push(`${route}: ${status}`);
    }
    expect(refused).toEqual([]);
  });

  test("malformed JSON, wrong types, unknown fields and oversize strings: a 4xx problem, nothing changed", async () => {
    const failures: string[] = [];
    let sent = 0;
    for (const r of w.routes.filter((x) => x.takesBody && !isConnect(key(x)))) {
      const route = key(r);
      const valid = VALID[route]!(w.ids);
      const path = concrete(route);
      const cases: [string, string][] = [
        ["malformed JSON", '{"name": '],
        ["an array for the body", "[1, 2, 3]"],
        ["a string for the body", '"text"'],
        ["an unknown field", JSON.stringify({ ...valid, definitely_not_a_field: true })],
        ...variants(valid, wrongType).map((o): [string, string] => [
          `a wrong type at ${o.where}`,
          JSON.stringify(o.body),
        ]),
        ...variants(valid, (v) => (typeof v === "string" ? OVERSIZE : undefined)).map((o): [string, string] => [
          `an oversize string at ${o.where}`,
          JSON.stringify(o.body),
        ]),
      ];
      for (const [label, body] of cases) {
        const v = await tryBad(route, ACTOR_OF[route] ?? "admin", path, body, "application/json");
        sent++;
        if (!v.ok) failures.push(`${route} (${label}): ${v.why}`);
      }
    }
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(100);
  });

  test("duplicates answer 409 and change nothing", async () => {
    const i = w.ids;
    const cases: [string, string, unknown][] = [
      ["POST", "/api/v1/orgs", { slug: "org-a", name: "again", owner: "ownerA" }],
      ["POST", `/api/v1/orgs/${i.A}/projects`, { name: "p1" }],
      ["PATCH", `/api/v1/projects/${i.p2}`, { name: "p1" }],
      ["POST", `/api/v1/orgs/${i.A}/members`, { user: "userA", role: "owner" }],
      ["POST", "/api/v1/users", { username: "ownerA" }],
    ];
    for (const [method, path, body] of cases) {
      const before = w.digest();
      const r = await w.call("admin", method, path, JSON.stringify(body));
      expect(`${method} ${path} ${r.status} ${r.headers.get("content-type")}`).toBe(
        `${method} ${path} 409 application/problem+json`,
      );
      expect(w.digest()).toBe(before);
    }
  });

  test("quota values out of range, fractional or of the wrong type answer 400 and change nothing", async () => {
    const before = w.digest();
    for (const body of [
      { max_builder_cpus: 0 },
      { max_builder_cpus: 257 },
      { max_projects: -1 },
      { max_running_builders: 1.5 },
      { max_cache_size_gb: "ten" },
      { max_builder_memory_mb: 255 },
      { max_projects: true },
    ]) {
      const r = await w.call("admin", "PUT", `/api/v1/orgs/${w.ids.A}/quotas`, JSON.stringify(body));
      expect(`${JSON.stringify(body)} ${r.status} ${r.headers.get("content-type")}`).toBe(
        `${JSON.stringify(body)} 400 application/problem+json`,
      );
    }
    expect(w.digest()).toBe(before);
  });
});

/** The wrong-type value for a message field. */
function wrongFor(f: DescField): unknown {
  if (f.fieldKind === "list") return "not a list";
  if (f.fieldKind === "map") return [1, 2];
  if (f.fieldKind === "message") return "not a message";
  return f.fieldKind === "scalar" && f.scalar === ScalarType.STRING ? 12345 : { not: "a scalar" };
}

/** Every string field of a request message (top level), for the oversize variants. */
const stringFields = (t: DescMessage) =>
  t.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);

describe("Connect RPCs", () => {
  const rpcs = Object.entries(METHODS) as [string, RpcMethod][];

  test("every RPC the appliance mounts is one of the methods swept here", () => {
    const mounted = w.routes
      .filter((r) => isConnect(key(r)) && r.path !== "/depot.*")
      .map((r) => r.path)
      .sort();
    expect(mounted).toEqual(rpcs.map(([, m]) => m.path).sort());
  });

  test("malformed JSON and proto, wrong types, unknown fields and oversize strings: a Connect error, nothing changed", async () => {
    const failures: string[] = [];
    const enc = new TextEncoder();
    for (const [name, m] of rpcs) {
      const route = `POST ${m.path}`;
      const stream = m.kind !== "unary";
      const json = stream ? "application/connect+json" : "application/json";
      const proto = stream ? "application/connect+proto" : "application/proto";
      const wrap = (b: Uint8Array) => (stream ? envelope(b) : b);
      const variants: [string, Uint8Array, string][] = [
        ["malformed JSON", wrap(enc.encode('{"buildId": ')), json],
        ["a JSON array", wrap(enc.encode("[1, 2]")), json],
        ["an unknown field", wrap(enc.encode(JSON.stringify({ definitelyNotAField: true }))), json],
        // field 1, length-delimited, claiming 2^31 bytes that never come
        ["malformed proto", wrap(new Uint8Array([0x0a, 0x80, 0x80, 0x80, 0x80, 0x08, 0x41])), proto],
        ["an unknown wire type", wrap(new Uint8Array([0x0f, 0x01])), proto],
        ...m.input.fields.map((f): [string, Uint8Array, string] => [
          `a wrong type at /${f.jsonName}`,
          wrap(enc.encode(JSON.stringify({ [f.jsonName]: wrongFor(f) }))),
          json,
        ]),
        // Over the unary limit (1 MiB) in one string: refused before it is decoded.
        ...stringFields(m.input).map((f): [string, Uint8Array, string] => [
          `an oversize string at /${f.jsonName}`,
          wrap(enc.encode(JSON.stringify({ [f.jsonName]: "x".repeat(1024 * 1024 + 10) }))),
          json,
        ]),
      ];
      if (stream)
        variants.push([
          "an oversize stream message",
          envelope(enc.encode(JSON.stringify({ buildId: "x".repeat(17 * 1024 * 1024) }))),
          json,
        ]);
      for (const [label, body, contentType] of variants) {
        const v = await tryBad(route, "admin", m.path, body, contentType, stream);
        if (!v.ok) failures.push(`${name} (${label}): ${v.why}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
