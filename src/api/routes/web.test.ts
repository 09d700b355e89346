/**
 * @module api/routes/web.test
 * The UI's files as a browser gets them: gzip when asked for (the same bytes once unpacked), a
 * 304 for a file it already has, the strict CSP on every answer, the shell for a browser's
 * address and a problem for anything else.
 */
import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { webRoutes } from "./web.ts";

const app = new Elysia()
  .onError(({ error }) => new Response((error as Error).message, { status: 404 }))
  .use(webRoutes());
const get = (path: string, headers: Record<string, string> = {}) =>
  app.handle(new Request(`http://localhost${path}`, { headers }));

describe("the web UI's files", () => {
  test("gzip when the client takes it, the same bytes unpacked; plain otherwise", async () => {
    const plain = await get("/ui/app.js");
    expect(plain.headers.get("content-encoding")).toBeNull();
    const text = await plain.text();
    expect(text.length).toBeGreaterThan(1000);
    const zipped = await get("/ui/app.js", { "accept-encoding": "gzip, deflate, br" });
    expect(zipped.headers.get("content-encoding")).toBe("gzip");
    expect(zipped.headers.get("vary")).toBe("accept-encoding");
    const bytes = new Uint8Array(await zipped.arrayBuffer());
    expect(bytes.length).toBeLessThan(text.length / 2);
    expect(new TextDecoder().decode(Bun.gunzipSync(bytes))).toBe(text);
  });

  test("a file the browser has already is a 304 with no body", async () => {
    const first = await get("/ui/app.css");
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^".+"$/);
    const again = await get("/ui/app.css", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    expect((await get("/ui/app.css", { "if-none-match": '"stale"' })).status).toBe(200);
  });

  test("every answer carries the strict CSP; a browser's address gets the shell, anything else not", async () => {
    for (const r of [await get("/"), await get("/ui/app.js"), await get("/orgs/x/projects", { accept: "text/html" })]) {
      const csp = r.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(r.status).toBe(200);
    }
    expect(await (await get("/orgs/x/projects", { accept: "text/html" })).text()).toContain('src="/ui/app.js"');
    expect((await get("/orgs/x/projects")).status).toBe(404);
    expect((await get("/api/v1/nothing", { accept: "text/html" })).status).toBe(404);
    expect((await get("/ui/nothing.js")).status).toBe(404);
  });
});
