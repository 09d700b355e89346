/**
 * @module auth/oidc/fetch.test
 * The pinned document fetch against real listeners on loopback: the name is resolved once, every
 * answer is checked, the connection goes to the checked address while the Host header and the TLS
 * name (SNI, certificate check) stay the issuer's, and a mixed or internal answer is refused.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NO_INTERNAL, parseAllowInternal } from "./address.ts";
import { pinnedGetFactory, type Resolve } from "./fetch.ts";
import { rejectionReason } from "../../../test/support/oidc-issuer.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-oidc-fetch-"));
let server: ReturnType<typeof Bun.serve>;
let cert = "";
const seen: { host: string | null }[] = [];

beforeAll(() => {
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
      join(dir, "k.pem"),
      "-out",
      join(dir, "c.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=idp.test",
      "-addext",
      "subjectAltName=DNS:idp.test",
    ],
    { stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr}`);
  cert = readFileSync(join(dir, "c.pem"), "utf8");
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    tls: { cert, key: readFileSync(join(dir, "k.pem"), "utf8") },
    fetch(req) {
      seen.push({ host: req.headers.get("host") });
      return Response.json({ ok: true });
    },
  });
});
afterAll(async () => {
  await server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

/** A resolver that answers from a script, and counts. */
function scripted(...answers: string[][]) {
  let calls = 0;
  const resolve: Resolve = async () =>
    (answers[Math.min(calls++, answers.length - 1)] ?? []).map((address) => ({
      address,
      family: address.includes(":") ? 6 : 4,
    }));
  return { resolve, calls: () => calls };
}

test("connects to the checked address, with the issuer's name as Host and TLS name", async () => {
  const dns = scripted(["127.0.0.1"], ["10.9.9.9"]); // a second, different answer is never asked for
  const get = pinnedGetFactory({ allowInternal: parseAllowInternal("127.0.0.0/8"), resolve: dns.resolve, ca: cert });
  const r = await get(`https://idp.test:${server.port}/.well-known/openid-configuration`, "discovery");
  expect(r).toEqual({ status: 200, body: '{"ok":true}' });
  expect(dns.calls()).toBe(1);
  expect(seen.at(-1)).toEqual({ host: `idp.test:${server.port}` }); // the certificate (idp.test only) was checked too
});

test("the certificate is checked against the issuer's name", async () => {
  const get = pinnedGetFactory({
    allowInternal: parseAllowInternal("127.0.0.0/8"),
    resolve: scripted(["127.0.0.1"]).resolve,
    ca: cert,
  });
  expect(await rejectionReason(() => get(`https://other.test:${server.port}/`, "jwks"))).toBe(
    "oidc: jwks fetch failed",
  );
  const untrusting = pinnedGetFactory({
    allowInternal: parseAllowInternal("127.0.0.0/8"),
    resolve: scripted(["127.0.0.1"]).resolve,
  });
  expect(await rejectionReason(() => untrusting(`https://idp.test:${server.port}/`, "jwks"))).toBe(
    "oidc: jwks fetch failed",
  );
});

test("a name resolving to an internal address is refused by default, before any connection", async () => {
  const before = seen.length;
  for (const [answer, kind] of [
    [["127.0.0.1"], "127.0.0.1 is loopback"],
    [["169.254.1.1"], "169.254.1.1 is link-local"],
    [["::ffff:10.0.0.1"], "::ffff:10.0.0.1 is private"],
    [["100.64.0.9"], "100.64.0.9 is shared (CGNAT)"],
    [["0.0.0.0"], "0.0.0.0 is unspecified"],
  ] as const) {
    const get = pinnedGetFactory({ allowInternal: NO_INTERNAL, resolve: scripted([...answer]).resolve, ca: cert });
    expect(await rejectionReason(() => get(`https://idp.test:${server.port}/`, "discovery"))).toStartWith(
      `oidc: discovery address ${kind}`,
    );
  }
  expect(seen.length).toBe(before);
});

test("every answer is checked: one allowed address beside an internal one is refused", async () => {
  const get = pinnedGetFactory({
    allowInternal: parseAllowInternal("127.0.0.0/8"),
    resolve: scripted(["127.0.0.1", "10.0.0.1"]).resolve,
    ca: cert,
  });
  expect(await rejectionReason(() => get(`https://idp.test:${server.port}/`, "discovery"))).toBe(
    "oidc: discovery address 10.0.0.1 is private; the operator may allow it with oidc.allow_internal",
  );
});

test("a name that does not resolve", async () => {
  const get = pinnedGetFactory({
    allowInternal: NO_INTERNAL,
    resolve: async () => {
      throw new Error("ENOTFOUND");
    },
  });
  expect(await rejectionReason(() => get("https://nowhere.invalid/", "discovery"))).toBe(
    "oidc: discovery host does not resolve",
  );
});
