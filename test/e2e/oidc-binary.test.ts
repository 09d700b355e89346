/**
 * @module test/e2e/oidc-binary
 * The compiled `slipway serve` and an OIDC issuer on this machine, over TLS with a private CA
 * (oidc.ca_file), named `localhost`: the name passes when the trust is added (names are judged
 * by their addresses when fetched), and the raw CI token is refused with the address and the
 * setting in the audit log, without a single request to the issuer, until the operator allows
 * that issuer's origin (oidc.allow_internal); then the same token works.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { b64url, githubClaims, makeKey, type TestKey } from "../support/oidc-issuer.ts";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { serve, type Served } from "../support/serve.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-oidc-bin-"));
const AUD = "slipway-oidc-binary-test";
let key: TestKey;
let idp: ReturnType<typeof Bun.serve>;
let issuer = "";
let requests = 0;
let s: Served | null = null;

async function mint(): Promise<string> {
  const input = `${b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid: key.kid }))}.${b64url(JSON.stringify(githubClaims(issuer, Math.floor(Date.now() / 1000), { aud: AUD })))}`;
  const sig = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, new TextEncoder().encode(input)),
  );
  return `${input}.${b64url(sig)}`;
}

beforeAll(async () => {
  key = await makeKey("ES256");
  const r = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      join(work, "k.pem"),
      "-out",
      join(work, "ca.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost",
    ],
    { stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr}`);
  idp = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    tls: { cert: readFileSync(join(work, "ca.pem"), "utf8"), key: readFileSync(join(work, "k.pem"), "utf8") },
    fetch(req) {
      requests++;
      const path = new URL(req.url).pathname;
      if (path === "/.well-known/openid-configuration")
        return Response.json({ issuer, jwks_uri: `${issuer}/.well-known/jwks` });
      if (path === "/.well-known/jwks") return Response.json({ keys: [key.publicJwk] });
      return new Response("not found", { status: 404 });
    },
  });
  issuer = `https://localhost:${idp.port}`;
});
afterAll(async () => {
  await s?.stop();
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  await idp.stop(true);
  rmSync(work, { recursive: true, force: true });
});

test("an issuer resolving to loopback is refused until the operator allows its origin; then its token works", async () => {
  const dataDir = join(work, "data");
  const caFile = ["--set", `oidc.ca_file=${join(work, "ca.pem")}`];
  s = await serve(slipwayBinary(), dataDir, caFile);
  const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
  const call = (token: string, method: string, path: string, body?: unknown) =>
    s!.get(path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const project = (
    (await (await call(admin, "POST", "/api/v1/orgs/default/projects", { name: "app" })).json()) as { id: string }
  ).id;
  const added = await call(admin, "POST", `/api/v1/projects/${project}/trust`, {
    provider: "github",
    issuer,
    owner: "acme",
    repository: "acme/app",
    audiences: [AUD],
  });
  expect(added.status).toBe(201);

  expect((await call(await mint(), "GET", "/api/v1/projects")).status).toBe(401);
  const audit = (await (await call(admin, "GET", "/api/v1/audit?limit=5")).json()) as {
    action: string;
    details: { reason?: string };
  }[];
  expect(audit.find((e) => e.action === "auth.oidc")?.details.reason).toBe(
    "oidc: discovery address 127.0.0.1 is loopback; the operator may allow it with oidc.allow_internal",
  );
  expect(requests).toBe(0);

  await s.stop();
  s = await serve(slipwayBinary(), dataDir, [...caFile, "--set", `oidc.allow_internal=${issuer}`]);
  const listed = await call(await mint(), "GET", "/api/v1/projects");
  expect(listed.status).toBe(200);
  expect(((await listed.json()) as { id: string }[]).map((p) => p.id)).toEqual([project]);
  expect(requests).toBe(2); // discovery, then the JWKS, over TLS checked against oidc.ca_file
}, 120_000);
