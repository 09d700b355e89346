/**
 * @module test/e2e/openapi
 * The OpenAPI document as the compiled binary serves it: every operation that takes a request
 * body describes it as JSON with its fields (the models each feature defines once), so the API
 * reference lists them and its "try it out" can send one. A body documented without a schema
 * with properties fails here, naming the operation.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { serve, type Served } from "../support/serve.ts";

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  anyOf?: Schema[];
  const?: unknown;
}
interface Operation {
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
}

describe("the OpenAPI document of the running appliance", () => {
  let work: string;
  let server: Served;
  let doc: Document;
  const bodies = () =>
    Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op.requestBody !== undefined)
        .map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, content: op.requestBody!.content ?? {} })),
    );

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "slipway-openapi-"));
    server = await serve(slipwayBinary(), join(work, "data"));
    const r = await server.get("/api/v1/openapi.json");
    expect(r.status).toBe(200);
    doc = (await r.json()) as Document;
  });

  afterAll(async () => {
    if (server?.proc.exitCode === null) await server.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test("every request body is JSON with a schema that has properties", () => {
    const all = bodies();
    // The management API's writes that read a body (orgs, members, quotas, users, projects,
    // tokens, trust, device login, sessions, egress, registry): at least the 24 of the issue.
    expect(all.length).toBeGreaterThanOrEqual(24);
    const lacking = all
      .filter(
        (b) =>
          Object.keys(b.content).join() !== "application/json" ||
          Object.keys(b.content["application/json"]?.schema?.properties ?? {}).length === 0,
      )
      .map((b) => b.name);
    expect(lacking).toEqual([]);
  });

  test("a body's fields carry their rules: required names, enumerations, patterns", () => {
    const tokenCreate = doc.paths["/api/v1/tokens"]!.post!.requestBody!.content!["application/json"]!.schema!;
    expect(Object.keys(tokenCreate.properties!).sort()).toEqual(["expires_at", "kind", "name", "org", "project"]);
    expect(tokenCreate.required!.sort()).toEqual(["kind", "name"]);
    expect(JSON.stringify(tokenCreate.properties!.kind)).toContain("project");

    const projectCreate =
      doc.paths["/api/v1/orgs/{org}/projects"]!.post!.requestBody!.content!["application/json"]!.schema!;
    expect(projectCreate.required).toEqual(["name"]);
    expect(Object.keys(projectCreate.properties!)).toContain("builder_cpus");
    expect(JSON.stringify(projectCreate.properties!.name)).toContain("pattern");
  });

  test("a body sent as the document describes it is accepted; one field off is a problem naming it", async () => {
    const admin = (await Bun.file(join(server.dataDir, "initial-admin-token")).text()).trim();
    const orgCreate = doc.paths["/api/v1/orgs"]!.post!.requestBody!.content!["application/json"]!.schema!;
    expect(orgCreate.required!.sort()).toEqual(["name", "slug"]);
    const post = (body: unknown) =>
      server.get("/api/v1/orgs", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ slug: "docs-org", name: "From the document" })).status).toBe(201);
    const refused = await post({ slug: "docs-org-2", name: "N", colour: "blue" });
    expect(refused.status).toBe(400);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(((await refused.json()) as { detail: string }).detail).toContain("colour");
  });
});
