/**
 * @module test/e2e/oidc-internal
 * Issuers on internal addresses (issue 13, SSRF through trust relationships), with real
 * listeners: one on a private address inside a network namespace this test creates (a veth pair,
 * a /30 in 10.251.0.0/16 picked by the process id, so concurrent runs do not collide), one on
 * loopback. By default the appliance refuses to add or fetch from them, with an error naming the
 * address and the setting; when the operator allows them
 * (oidc.allow_internal, by range or by origin) the same issuer works end to end.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import {
  githubClaims,
  makeKey,
  b64url,
  rejectionReason,
  startTestIssuer,
  type TestIssuer,
  type TestKey,
} from "../support/oidc-issuer.ts";
import { oidcKeysFactory, parseAllowInternal } from "../../src/auth/oidc/index.ts";
import { integrationSuite } from "../support/integration.ts";
import { makeWorld, WORLD_AUDIENCE } from "../support/world.ts";

const NS = `slw-oidc-${process.pid}`;
const VETH = `vo${process.pid % 100000}`;
const SUBNET = `10.251.${process.pid % 250}`;
const HOST_IP = `${SUBNET}.1`;
const ISSUER_IP = `${SUBNET}.2`;
const PORT = 8080;
const PRIVATE_ISSUER = `http://${ISSUER_IP}:${PORT}`;

const sh = (argv: string[]) => {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
};
const missing =
  process.getuid?.() !== 0
    ? "needs root (ip netns, veth)"
    : Bun.spawnSync(["ip", "-V"], { stdout: "ignore", stderr: "ignore" }).exitCode !== 0
      ? "the ip command (iproute2) is missing"
      : null;

integrationSuite("OIDC issuers on internal addresses", missing, () => {
  let key: TestKey;
  let child: Bun.Subprocess<"ignore", "pipe", "inherit"> | null = null;
  let loop: TestIssuer;
  const now = () => Math.floor(Date.now() / 1000);
  const clock = () => ({ now: () => new Date() });

  async function mint(issuer: string) {
    const input = `${b64url(JSON.stringify({ alg: "ES256", typ: "JWT", kid: key.kid }))}.${b64url(JSON.stringify(githubClaims(issuer, now(), { aud: WORLD_AUDIENCE })))}`;
    const sig = new Uint8Array(
      await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, new TextEncoder().encode(input)),
    );
    return `${input}.${b64url(sig)}`;
  }

  beforeAll(async () => {
    key = await makeKey("ES256");
    loop = await startTestIssuer();
    Bun.spawnSync(["ip", "netns", "del", NS], { stderr: "ignore" });
    sh(["ip", "netns", "add", NS]);
    sh(["ip", "link", "add", `${VETH}h`, "type", "veth", "peer", "name", `${VETH}n`, "netns", NS]);
    sh(["ip", "addr", "add", `${HOST_IP}/30`, "dev", `${VETH}h`]);
    sh(["ip", "link", "set", `${VETH}h`, "up"]);
    sh(["ip", "-n", NS, "addr", "add", `${ISSUER_IP}/30`, "dev", `${VETH}n`]);
    sh(["ip", "-n", NS, "link", "set", `${VETH}n`, "up"]);
    sh(["ip", "-n", NS, "link", "set", "lo", "up"]);
    const spec = JSON.stringify({ host: ISSUER_IP, port: PORT, jwks: { keys: [key.publicJwk] } });
    const proc = Bun.spawn(
      ["ip", "netns", "exec", NS, process.execPath, join(import.meta.dir, "../support/oidc-issuer-child.ts"), spec],
      { stdin: "ignore", stdout: "pipe", stderr: "inherit" },
    );
    child = proc;
    const reader = proc.stdout.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain("ready");
  });
  afterAll(async () => {
    child?.kill();
    await child?.exited;
    await loop?.stop();
    Bun.spawnSync(["ip", "link", "del", `${VETH}h`], { stderr: "ignore" });
    Bun.spawnSync(["ip", "netns", "del", NS], { stderr: "ignore" });
  });

  test("the private issuer really answers from inside the namespace", async () => {
    const r = await fetch(`${PRIVATE_ISSUER}/.well-known/openid-configuration`);
    expect(((await r.json()) as { issuer: string }).issuer).toBe(PRIVATE_ISSUER);
  });

  test("by default a trust naming a private or loopback issuer is refused, with the address and the setting", async () => {
    const w = await makeWorld({ oidcAllowInternal: "" });
    try {
      for (const [issuer, kind] of [
        [PRIVATE_ISSUER, `address ${ISSUER_IP} is private`],
        [loop.issuer, "address 127.0.0.1 is loopback"],
        ["http://0x7f000001:8080", "address 127.0.0.1 is loopback"],
      ] as const) {
        const r = await w.call("ownerA", "POST", `/api/v1/projects/${w.ids.p1}/trust`, {
          provider: "github",
          issuer,
          owner: "acme",
          repository: "acme/app",
        });
        expect(r.status).toBe(400);
        expect(r.headers.get("content-type")).toBe("application/problem+json");
        expect(JSON.stringify(await r.json())).toContain(`${kind}; the operator may allow it with oidc.allow_internal`);
      }
    } finally {
      w.close();
    }
  });

  test("fetching keys from them is refused by default, before any connection", async () => {
    for (const issuer of [PRIVATE_ISSUER, loop.issuer]) {
      const before = loop.requests.discovery;
      const r = await rejectionReason(() => oidcKeysFactory({ ...clock() }).getKey(issuer, key.kid));
      expect([
        `oidc: issuer address ${ISSUER_IP} is private; the operator may allow it with oidc.allow_internal`,
        "oidc: issuer address 127.0.0.1 is loopback; the operator may allow it with oidc.allow_internal",
      ]).toContain(r);
      expect(loop.requests.discovery).toBe(before);
    }
  });

  test("allowed by range or by origin, the private issuer's keys are fetched (the connection goes to the checked address)", async () => {
    for (const allow of [`${SUBNET}.0/30`, PRIVATE_ISSUER, "https://ghe.example.com, 10.0.0.0/8"]) {
      expect(
        await oidcKeysFactory({ ...clock(), allowInternal: parseAllowInternal(allow) }).getKey(PRIVATE_ISSUER, key.kid),
      ).toMatchObject({ kid: key.kid });
    }
    // Another internal range allowed is not this one.
    expect(
      await rejectionReason(() =>
        oidcKeysFactory({ ...clock(), allowInternal: parseAllowInternal("192.168.0.0/16") }).getKey(
          PRIVATE_ISSUER,
          key.kid,
        ),
      ),
    ).toStartWith(`oidc: issuer address ${ISSUER_IP} is private`);
  });

  test("end to end when the operator allows it: the trust is added and a CI token for it is exchanged", async () => {
    const w = await makeWorld({ oidcAllowInternal: `${SUBNET}.0/30` });
    try {
      const r = await w.call("ownerA", "POST", `/api/v1/projects/${w.ids.p1}/trust`, {
        provider: "github",
        issuer: PRIVATE_ISSUER,
        owner: "acme",
        repository: "acme/app",
      });
      expect(r.status).toBe(201);
      const x = await w.handle(
        new Request("http://localhost/api/v1/oidc/exchange", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token: await mint(PRIVATE_ISSUER) }),
        }),
      );
      expect(x.status).toBe(200);
      expect(((await x.json()) as { projects: string[] }).projects).toEqual([w.ids.p1]);
    } finally {
      w.close();
    }
  });
});
