/**
 * @module registry/service.test
 * The token service without the registry process (its binary is absent here on purpose): who gets
 * which actions on which repository, pull tokens, Basic and OAuth2 forms, and CreateBuild's save
 * targets. The registry itself is exercised for real in test/e2e/registry.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { orgsServiceFactory } from "../orgs/service.ts";
import { projectsServiceFactory } from "../projects/service.ts";
import { silentLogger } from "../log/logger.ts";
import { createSealer } from "../secrets/index.ts";
import { builderRegistryHost, registryServiceFactory, type RegistryService } from "./service.ts";

let dir = "";
let db: Database;
let reg: RegistryService;
const ACTORS: Record<string, Actor> = {
  slw_p_a1: { kind: "project-token", tokenId: "t1", orgId: "org_a", projectId: "prj_a1" },
  slw_p_b1: { kind: "project-token", tokenId: "t2", orgId: "org_b", projectId: "prj_b1" },
  slw_b_a1: { kind: "build-token", tokenId: "t3", orgId: "org_a", projectId: "prj_a1", buildId: "bld_1" },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-registry-svc-"));
  db = openDatabase(join(dir, "t.db"));
  applyMigrations(db);
  for (const [o, p] of [
    ["org_a", "prj_a1"],
    ["org_b", "prj_b1"],
  ] as const) {
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES (?, ?, ?, ?)").run(
      o,
      o.replace("_", "-"),
      o,
      new Date().toISOString(),
    );
    db.query(
      "INSERT INTO projects (id, org_id, name, build_timeout_seconds, created_at) VALUES (?, ?, 'p', 600, ?)",
    ).run(p, o, new Date().toISOString());
  }
  reg = registryServiceFactory({
    db,
    projects: projectsServiceFactory({
      db,
      audit: auditServiceFactory({ db }),
      orgs: orgsServiceFactory({ db, audit: auditServiceFactory({ db }) }),
    }),
    // No build is ever pushed here: nothing to link an image to.
    builds: { find: () => null },
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    log: silentLogger,
    dataDir: dir,
    settings: { enabled: true, binary: join(dir, "no-such-registry"), retention_days: 7, gc_interval_hours: 0 },
    publicHost: "localhost:8443",
    builderHost: "registry.slipway.internal:8443",
    actorOf: async (r) =>
      ACTORS[(r.headers.get("authorization") ?? "").replace("Bearer ", "")] ?? { kind: "anonymous" },
  });
  await reg.start();
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const basic = (secret: string) => ({ authorization: `Basic ${Buffer.from(`x-token:${secret}`).toString("base64")}` });
async function grantedTo(secret: string, scope: string): Promise<string[][]> {
  const r = await reg.handle(
    new Request(`https://localhost:8443/registry/token?service=slipway-registry&scope=${encodeURIComponent(scope)}`, {
      headers: basic(secret),
    }),
  )!;
  expect(r.status).toBe(200);
  const jwt = ((await r.json()) as { token: string }).token;
  return (
    JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as { access: { actions: string[] }[] }
  ).access.map((a) => a.actions);
}

test("a missing binary leaves the registry unavailable, with why", () => {
  expect(reg.available()).toBe(false);
  expect(reg.status().detail).toContain("not installed");
  expect(() => reg.validateSave([])).toThrow(/not available/);
});

test("grants: own project pull+push, a foreign project and a missing one nothing, catalog never", async () => {
  expect(await grantedTo("slw_p_a1", "repository:prj_a1:pull,push")).toEqual([["pull", "push"]]);
  expect(await grantedTo("slw_p_a1", "repository:prj_b1:pull,push")).toEqual([[]]);
  expect(await grantedTo("slw_p_a1", "repository:prj_zzzz:pull,push")).toEqual([[]]);
  expect(await grantedTo("slw_b_a1", "repository:prj_a1:pull,push")).toEqual([["pull", "push"]]);
  expect(await grantedTo("slw_b_a1", "repository:prj_b1:pull")).toEqual([[]]);
  expect(await grantedTo("slw_p_a1", "registry:catalog:*")).toEqual([]);
  expect(await grantedTo("slw_p_a1", "repository:prj_a1:delete,*")).toEqual([[]]);
});

test("unknown credentials get 401 with a Basic challenge; the OAuth2 password grant works too", async () => {
  const bad = await reg.handle(
    new Request("https://localhost:8443/registry/token?scope=repository:prj_a1:pull", { headers: basic("slw_p_nope") }),
  )!;
  expect(bad.status).toBe(401);
  expect(bad.headers.get("www-authenticate")).toContain("Basic");
  const form = new URLSearchParams({
    grant_type: "password",
    username: "x-token",
    password: "slw_p_a1",
    scope: "repository:prj_a1:pull",
    service: "slipway-registry",
  });
  const ok = await reg.handle(
    new Request("https://localhost:8443/registry/token", {
      method: "POST",
      body: form,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    }),
  )!;
  expect(ok.status).toBe(200);
  expect(((await ok.json()) as { access_token: string }).access_token.split(".")).toHaveLength(3);
  const refresh = await reg.handle(
    new Request("https://localhost:8443/registry/token", {
      method: "POST",
      body: new URLSearchParams({ grant_type: "refresh_token" }),
    }),
  )!;
  expect(refresh.status).toBe(400);
});

test("an oversized token request is refused before it is read whole, chunked or not", async () => {
  const big = "x".repeat(200 * 1024);
  const declared = await reg.handle(
    new Request("https://localhost:8443/registry/token", {
      method: "POST",
      body: `grant_type=password&password=${big}`,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    }),
  )!;
  expect(declared.status).toBe(413);
  const chunks = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 50; i++) c.enqueue(new TextEncoder().encode(big.slice(0, 4096)));
      c.close();
    },
  });
  const chunked = await reg.handle(
    new Request("https://localhost:8443/registry/token", {
      method: "POST",
      body: chunks,
      duplex: "half",
    } as RequestInit),
  )!;
  expect(chunked.status).toBe(413);
});

test("a registry path answers 503 with why while the registry is not running", async () => {
  const r = await reg.handle(new Request("https://localhost:8443/v2/"))!;
  expect(r.status).toBe(503);
  expect(JSON.stringify(await r.json())).toContain("not installed");
  expect(reg.handle(new Request("https://localhost:8443/api/v1/me"))).toBeNull();
});

test("builders use the public name unless it is loopback", () => {
  expect(builderRegistryHost("localhost", 8443)).toEqual({ host: "registry.slipway.internal:8443", alias: true });
  expect(builderRegistryHost("127.0.0.1", 8443).alias).toBe(true);
  expect(builderRegistryHost("::1", 8443).alias).toBe(true);
  expect(builderRegistryHost("build.example.com", 8443)).toEqual({ host: "build.example.com:8443", alias: false });
  expect(builderRegistryHost("10.0.0.5", 443)).toEqual({ host: "10.0.0.5:443", alias: false });
});
