/**
 * @module api/app.test
 * The HTTP app's cross-cutting behaviour, in-process with narrow fakes: problem+json for every
 * kind of bad request, body limits (declared and chunked), no stack traces, request ids, HSTS,
 * and who may read /metrics.
 */
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { createLogger } from "../log/logger.ts";
import { HealthRegistry } from "../health/registry.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { createApp, type AppOptions } from "./app.ts";

function makeApp(over: Partial<AppOptions> = {}, peer = "127.0.0.1") {
  const lines: string[] = [];
  const health = new HealthRegistry();
  const plugin = new Elysia()
    .post("/test/echo", ({ body }) => body, { body: t.Object({ name: t.String({ minLength: 1 }) }) })
    .get("/test/boom", () => {
      throw new Error("database password is hunter2 at /secret/path");
    });
  const app = createApp({
    log: createLogger({ level: "debug", write: (l) => lines.push(l) }),
    health,
    metrics: new MetricsRegistry(),
    auth: { authenticate: async () => ({ kind: "anonymous" }) },
    version: "9.9.9",
    options: { maxBodyBytes: 1024, hstsMaxAgeSeconds: 600, metricsBearerToken: null, ...over },
    clientAddress: () => peer,
    plugins: [plugin],
  });
  const call = (path: string, init?: RequestInit) => app.handle(new Request(`http://localhost${path}`, init));
  return { app, call, lines, health };
}

const json = (body: string, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body,
});

async function problem(r: Response) {
  expect(r.headers.get("content-type")).toBe("application/problem+json");
  const p = (await r.json()) as Record<string, unknown>;
  expect(p.status).toBe(r.status);
  expect(typeof p.type).toBe("string");
  expect(typeof p.title).toBe("string");
  expect(p.request_id).toBe(r.headers.get("x-request-id"));
  return p;
}

describe("problem+json", () => {
  test("malformed JSON is a 400 naming the problem", async () => {
    const { call } = makeApp();
    const r = await call("/test/echo", json("{oops"));
    expect(r.status).toBe(400);
    expect((await problem(r)).detail).toContain("request body is not valid JSON");
  });

  test("a schema violation is a 400 with a pointer to the field", async () => {
    const { call } = makeApp();
    const r = await call("/test/echo", json(JSON.stringify({ name: 5 })));
    expect(r.status).toBe(400);
    const p = await problem(r);
    expect(p.errors).toEqual(expect.arrayContaining([expect.objectContaining({ pointer: "/name" })]));
  });

  test("valid input passes", async () => {
    const { call } = makeApp();
    const r = await call("/test/echo", json(JSON.stringify({ name: "ok" })));
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ name: "ok" });
  });

  test("bodies over the limit are 413, by declared length and when streamed without one", async () => {
    const { call } = makeApp();
    const declared = await call("/test/echo", json("x".repeat(100), { "content-length": "5000" }));
    expect(declared.status).toBe(413);
    await problem(declared);
    const body = new ReadableStream({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode("y".repeat(500)));
        c.close();
      },
    });
    const streamed = await call("/test/echo", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await problem(streamed)).detail).toContain("exceeds the limit of 1024 bytes");
  });

  test("a body of any other content type is read within the same limit (413), and a small text body is still a 400", async () => {
    const { call } = makeApp();
    for (const type of [
      "text/plain",
      "application/octet-stream",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
    ]) {
      let pulled = 0;
      const body = new ReadableStream({
        pull(c) {
          if (pulled >= 1024 * 1024) return c.close();
          pulled += 512;
          c.enqueue(new TextEncoder().encode("y".repeat(512)));
        },
      });
      const big = await call("/test/echo", {
        method: "POST",
        headers: { "content-type": type },
        body,
        duplex: "half",
      } as RequestInit);
      expect({ type, status: big.status }).toEqual({ type, status: 413 });
      expect({ type, pulled: pulled <= 2048 }).toEqual({ type, pulled: true });
    }
    expect(
      (await call("/test/echo", { method: "POST", headers: { "content-type": "text/plain" }, body: "name=x" })).status,
    ).toBe(400);
    // Form bodies are still read as fields, as the framework did (the API itself takes JSON).
    expect(
      await (
        await call("/test/echo", {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "name=x",
        })
      ).json(),
    ).toEqual({ name: "x" });
  });

  test("an unknown route is a 404", async () => {
    const { call } = makeApp();
    const r = await call("/nowhere");
    expect(r.status).toBe(404);
    expect((await problem(r)).instance).toBe("/nowhere");
  });

  test("an unexpected error is a bare 500: no message, no stack; the log has it under the request id", async () => {
    const { call, lines } = makeApp();
    const r = await call("/test/boom");
    expect(r.status).toBe(500);
    const text = await r.clone().text();
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("at ");
    const p = await problem(r);
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "request failed");
    expect(logged.request_id).toBe(p.request_id);
    expect(logged.error.message).toContain("hunter2");
  });
});

describe("headers", () => {
  test("HSTS when serving HTTPS, none over plain HTTP", async () => {
    expect((await makeApp().call("/livez")).headers.get("strict-transport-security")).toBe("max-age=600");
    expect(
      (await makeApp({ hstsMaxAgeSeconds: null }).call("/livez")).headers.get("strict-transport-security"),
    ).toBeNull();
  });

  test("errors carry the request id and HSTS too", async () => {
    const r = await makeApp().call("/nowhere", { headers: { "x-request-id": "abc-1" } });
    expect(r.headers.get("x-request-id")).toBe("abc-1");
    expect(r.headers.get("strict-transport-security")).toBe("max-age=600");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  test("no response is content-sniffed (build logs are text a build wrote)", async () => {
    expect((await makeApp().call("/livez")).headers.get("x-content-type-options")).toBe("nosniff");
  });
});

describe("/metrics access", () => {
  test("loopback callers get metrics; others get 403 unless they bring the token", async () => {
    expect((await makeApp({}, "127.0.0.1").call("/metrics")).status).toBe(200);
    expect((await makeApp({}, "::1").call("/metrics")).status).toBe(200);
    expect((await makeApp({}, "::ffff:127.0.0.1").call("/metrics")).status).toBe(200);
    const remote = makeApp({ metricsBearerToken: "s3cret-metrics" }, "192.0.2.10");
    expect((await remote.call("/metrics")).status).toBe(403);
    expect((await remote.call("/metrics", { headers: { authorization: "Bearer wrong" } })).status).toBe(403);
    const ok = await remote.call("/metrics", { headers: { authorization: "Bearer s3cret-metrics" } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("# TYPE slipway_http_requests_total counter");
    expect(
      (
        await makeApp({ metricsBearerToken: null }, "192.0.2.10").call("/metrics", {
          headers: { authorization: "Bearer " },
        })
      ).status,
    ).toBe(403);
  });
});

describe("/readyz", () => {
  test("aggregates registered checks: warn stays 200, fail is 503", async () => {
    const { call, health } = makeApp();
    health.register({ name: "a:ok", run: () => ({ status: "pass" }) });
    health.register({ name: "b:degraded", run: () => ({ status: "warn", output: "no dm-crypt" }) });
    const warn = await call("/readyz");
    expect(warn.status).toBe(200);
    expect(((await warn.json()) as { status: string }).status).toBe("warn");
    health.register({ name: "c:broken", run: () => ({ status: "fail", output: "db gone" }) });
    const fail = await call("/readyz");
    expect(fail.status).toBe(503);
    expect(fail.headers.get("content-type")).toBe("application/health+json");
    expect(
      ((await fail.json()) as { checks: Record<string, { output: string }[]> }).checks["c:broken"]![0]!.output,
    ).toBe("db gone");
  });
});
