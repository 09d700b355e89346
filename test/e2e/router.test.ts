/**
 * @module test/e2e/router
 * The build endpoint with real TLS and real certificates from the pki (on a migrated SQLite
 * file): a real BuildKit (the host dockerd's embedded one, behind its /grpc h2c upgrade) answers
 * ListWorkers through the router; every refusal case is shown against a fake builder — a unix
 * socket server that records whether anything at all reached it — so "refused" provably means
 * "not one byte forwarded". Also: buildEnded closes open connections in < 1 s, the handshake,
 * idle and per-build limits, and the metrics.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { createSealer, type Sealer } from "../../src/secrets/index.ts";
import { pkiServiceFactory, type IssuedLeaf, type Pki } from "../../src/pki/index.ts";
// Forged certificates are made here with @peculiar/x509 directly, not with the pki's helpers:
// they must not depend on how the pki builds its own.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createLogger, silentLogger } from "../../src/log/logger.ts";
import { MetricsRegistry } from "../../src/metrics/registry.ts";
import {
  buildRouterFactory,
  normalizeSerial,
  type BuildRouter,
  type RouteTarget,
  type RouterLimits,
} from "../../src/router/index.ts";
import { integrationSuite } from "../support/integration.ts";
import { callListWorkers, decodeListWorkers } from "../../src/builders/image/grpc.ts";

const DOCKER_SOCK = "/var/run/docker.sock";
const HOUR = 3_600_000;

async function dockerMissing(): Promise<string | null> {
  try {
    const res = await fetch("http://docker/_ping", { unix: DOCKER_SOCK, signal: AbortSignal.timeout(3000) });
    return res.ok ? null : `GET /_ping on ${DOCKER_SOCK} answered ${res.status}`;
  } catch (e) {
    return `no dockerd at ${DOCKER_SOCK} (${(e as Error).message})`;
  }
}
const missingDocker = await dockerMissing();

// ---------------------------------------------------------------------------------------------
// A fake builder: records every connection and byte, echoes bytes back so routed traffic shows.

interface FakeBuilder {
  path: string;
  connections: number;
  bytes: number;
  close(): Promise<void>;
}

async function fakeBuilder(path: string): Promise<FakeBuilder> {
  const sockets = new Set<net.Socket>();
  const fb: FakeBuilder = {
    path,
    connections: 0,
    bytes: 0,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  const server = net.createServer((s) => {
    fb.connections++;
    sockets.add(s);
    s.on("data", (d) => {
      fb.bytes += d.length;
      s.write(d);
    });
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  return fb;
}

// ---------------------------------------------------------------------------------------------
// The world: two appliances' pkis, the router's server certificate, a router, a lookup table.

let dir: string;
let db: Database;
let sealer: Sealer;
let pki: Pki;
let rootPem: string;
let intermediatesPem: string[];
let serverLeaf: IssuedLeaf;
let fake: FakeBuilder;
const routes = new Map<string, RouteTarget>();
const lookup = (serial: string) => routes.get(serial) ?? null;
const routers: BuildRouter[] = [];

/** The handshake deadline is short enough to test, long enough that a loaded machine (client and
 * router share this process's event loop; a GC pause after the bulk test) never trips it on a
 * connection that does complete its handshake. */
const HANDSHAKE_TIMEOUT_MS = 2_000;
const DEFAULT_TEST_LIMITS: Partial<RouterLimits> = {
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  idleTimeoutMs: 30_000,
  maxConnectionsPerBuild: 8,
};

async function startRouter(limits: Partial<RouterLimits> = DEFAULT_TEST_LIMITS, metrics = new MetricsRegistry()) {
  const router = buildRouterFactory({
    lookup,
    tls: {
      certPem: serverLeaf.chainPem,
      keyPem: serverLeaf.keyPem,
      clientIntermediatesPem: intermediatesPem,
      clientRootsPem: rootPem,
    },
    limits,
    logger: process.env.ROUTER_DEBUG ? createLogger({ level: "debug", format: "pretty" }) : silentLogger,
    metrics,
  });
  routers.push(router);
  const { port } = await router.listen({ hostname: "127.0.0.1", port: 0 });
  return { router, port, metrics };
}

let main: { router: BuildRouter; port: number; metrics: MetricsRegistry };

const clientLeaf = (
  p: Pki,
  build: string,
  extra: { lifetimeMs?: number; usage?: "client" | "server"; issuer?: "server" | "build-client" } = {},
) =>
  p.issueLeaf({
    issuer: extra.issuer ?? "build-client",
    usage: extra.usage ?? "client",
    commonName: build,
    names: { uri: [`slipway://test/org/o/project/p/build/${build}/platform/amd64`] },
    lifetimeMs: extra.lifetimeMs ?? HOUR,
    requester: "test",
  });

const fakeTarget = (buildId: string, path = fake.path): RouteTarget => ({
  buildId,
  projectId: "p1",
  platform: "linux/amd64",
  socketPath: path,
  runtime: "buildkitd",
});

x509.cryptoProvider.set(crypto);
const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const generateKeyPair = async () => (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;

/** A client-auth leaf (the pki's leaf profile) signed by an arbitrary key/name: root, self-signed. */
async function forgedLeaf(opts: {
  issuerName: string;
  signingKey: CryptoKey;
  issuerPublic: CryptoKey;
  selfSigned?: boolean;
}) {
  const keys = await generateKeyPair();
  const serialBytes = crypto.getRandomValues(new Uint8Array(16));
  serialBytes[0] = (serialBytes[0]! & 0x7f) | 0x01;
  const serial = Buffer.from(serialBytes).toString("hex");
  const t = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: "CN=forged, O=Slipway",
    issuer: opts.selfSigned ? "CN=forged, O=Slipway" : opts.issuerName,
    notBefore: new Date(t - 60_000),
    notAfter: new Date(t + HOUR),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    publicKey: keys.publicKey,
    signingKey: opts.selfSigned ? keys.privateKey : opts.signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(opts.selfSigned ? keys.publicKey : opts.issuerPublic),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: "slipway://forged" }], false),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { serial, certPem: cert.toString("pem"), keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}

interface Attempt {
  /** Bytes that came back (the fake builder echoes: any byte here means it was reached). */
  data: string;
  error: string | null;
  closedAfterMs: number;
  /** The client gave up waiting (GIVE_UP_MS) and closed it itself: the router never did. */
  gaveUp: boolean;
}

// Deadlines for "the router closes it": far beyond a busy machine's scheduling delays, and still
// well inside the 30 s idle timeout of the router under test, so only the rule being tested can
// have closed the connection. How fast it closes is measured by `bun run bench:router`.
const GIVE_UP_MS = 20_000;

/** Connects with TLS, sends a line, waits for the connection to end (or GIVE_UP_MS). */
function tlsAttempt(
  port: number,
  creds: { certPem?: string; keyPem?: string } | null,
  extra: tls.ConnectionOptions = {},
): Promise<Attempt> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let data = "";
    let error: string | null = null;
    let gaveUp = false;
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: rootPem,
      ALPNProtocols: ["h2"],
      ...(creds ? { cert: creds.certPem, key: creds.keyPem } : {}),
      ...extra,
    });
    s.on("secureConnect", () => s.write("hello builder\n"));
    s.on("data", (d) => (data += d.toString()));
    s.on("error", (e) => (error = e.message));
    const timer = setTimeout(() => ((gaveUp = true), s.destroy()), GIVE_UP_MS);
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ data, error, closedAfterMs: performance.now() - t0, gaveUp });
    });
  });
}

/** Opens a routed connection and waits for the fake builder's echo. */
function routed(
  port: number,
  creds: { certPem: string; keyPem: string },
  extra: tls.ConnectionOptions = {},
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: rootPem,
      cert: creds.certPem,
      key: creds.keyPem,
      ALPNProtocols: ["h2"],
      ...extra,
    });
    s.on("secureConnect", () => s.write("ping"));
    s.once("data", (d) => (d.toString() === "ping" ? resolve(s) : reject(new Error(`unexpected echo ${d}`))));
    s.on("error", reject);
    s.on("close", () => reject(new Error("closed before the echo")));
  });
}

const closedWithin = (s: net.Socket, ms: number) =>
  new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    if (s.destroyed) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    s.on("error", () => {});
    s.once("close", () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
    });
  });

/** Polls until cond holds (GIVE_UP_MS at most). */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (const deadline = performance.now() + GIVE_UP_MS; !cond(); await Bun.sleep(10)) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-router-"));
  db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  sealer = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
  pki = pkiServiceFactory({ db, sealer, applianceId: "router-test" });
  await pki.ensureHierarchy(["server", "build-client"]);
  rootPem = pki.rootCertificatePem();
  intermediatesPem = (
    db.query("SELECT cert_pem FROM certificate_authorities WHERE purpose = 'build-client'").all() as {
      cert_pem: string;
    }[]
  ).map((r) => r.cert_pem);
  serverLeaf = await pki.issueLeaf({
    issuer: "server",
    usage: "server",
    commonName: "localhost",
    names: { dns: ["localhost"], ip: ["127.0.0.1"] },
    lifetimeMs: HOUR,
    requester: "test",
  });
  fake = await fakeBuilder(join(dir, "fake-builder.sock"));
  main = await startRouter();
});

afterAll(async () => {
  for (const r of routers) await r.stop();
  await fake?.close();
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe("routing to the right builder", () => {
  test("a valid per-build certificate reaches its builder, bytes both ways", async () => {
    const leaf = await clientLeaf(pki, "ok-1");
    routes.set(leaf.serial, fakeTarget("ok-1"));
    const before = fake.connections;
    const s = await routed(main.port, leaf);
    expect(s.alpnProtocol).toBe("h2");
    expect(fake.connections).toBe(before + 1);
    // Past the handshake deadline a routed connection is left alone.
    await Bun.sleep(HANDSHAKE_TIMEOUT_MS + 300);
    expect(s.destroyed).toBe(false);
    const echo = new Promise<string>((r) => s.once("data", (d) => r(d.toString())));
    s.write("still there");
    expect(await echo).toBe("still there");
    s.destroy();
  });

  test("24 MiB both ways arrive intact and in order while the client stalls its reading (backpressure)", async () => {
    const leaf = await clientLeaf(pki, "bulk");
    routes.set(leaf.serial, fakeTarget("bulk"));
    const s = await routed(main.port, leaf);
    const size = 24 * 1024 * 1024;
    const sent = crypto.getRandomValues(new Uint8Array(size));
    // Not reading for a while: the echo piles up at the router, which must hold it (not drop or
    // reorder it) and stop reading from the builder until the client drains.
    s.pause();
    const received: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve, reject) => {
      s.on("data", (d: Buffer) => {
        received.push(d);
        got += d.length;
        if (got >= size) resolve();
      });
      s.on("close", () => reject(new Error(`closed after ${got} of ${size} bytes`)));
    });
    for (let off = 0; off < size; off += 1 << 20) {
      if (!s.write(sent.subarray(off, off + (1 << 20)))) await new Promise((r) => s.once("drain", r));
      if (off === 8 << 20) await Bun.sleep(200);
    }
    await Bun.sleep(300);
    s.resume();
    await all;
    const back = Buffer.concat(received);
    expect(back.length).toBe(size);
    expect(Buffer.compare(back, Buffer.from(sent))).toBe(0);
    const stats = main.router.stats().builds.find((b) => b.buildId === "bulk")!;
    expect(stats.bytesClientToBuilder).toBe(size + 4); // + the "ping" that proved the route
    expect(stats.bytesBuilderToClient).toBe(size + 4);
    s.destroy();
  });

  test("the full chain (leaf + intermediate) is accepted too", async () => {
    const leaf = await clientLeaf(pki, "ok-2");
    routes.set(leaf.serial, fakeTarget("ok-2"));
    const s = await routed(main.port, { certPem: leaf.chainPem, keyPem: leaf.keyPem });
    s.destroy();
  });
});

test("an intermediate rotated while the router runs is trusted at once (chain presented), the old one still", async () => {
  // Its own hierarchy: rotating the shared one would change what the other tests' router trusts.
  const rotDb = openDatabase(join(dir, "rotation.db"));
  applyMigrations(rotDb);
  const rotPki = pkiServiceFactory({ db: rotDb, sealer, applianceId: "rot" });
  await rotPki.ensureHierarchy(["server", "build-client"]);
  const r2 = buildRouterFactory({
    lookup,
    tls: {
      certPem: serverLeaf.chainPem,
      keyPem: serverLeaf.keyPem,
      clientIntermediatesPem: () => rotPki.trustBundle("build-client"),
      clientRootsPem: rotPki.trustBundle("root"),
    },
    limits: DEFAULT_TEST_LIMITS,
    logger: silentLogger,
    metrics: new MetricsRegistry(),
  });
  routers.push(r2);
  const { port } = await r2.listen({ hostname: "127.0.0.1", port: 0 });
  const old = await clientLeaf(rotPki, "rot-old");
  routes.set(old.serial, fakeTarget("rot-old"));
  await rotPki.rotateIntermediate("build-client", "test");
  const fresh = await clientLeaf(rotPki, "rot-new");
  routes.set(fresh.serial, fakeTarget("rot-new"));
  (await routed(port, { certPem: fresh.chainPem, keyPem: fresh.keyPem })).destroy();
  (await routed(port, old)).destroy();
  rotDb.close();
});

test("serials: one spelling whatever produced them; the pki's own pass through unchanged", async () => {
  const leaf = await clientLeaf(pki, "serial");
  expect(normalizeSerial(leaf.serial)).toBe(leaf.serial);
  expect(normalizeSerial("0F:3B:19")).toBe("0f3b19");
  expect(normalizeSerial("F3B19")).toBe("0f3b19");
  expect(normalizeSerial("00AB")).toBe("ab");
});

describe("refused, with nothing reaching any builder", () => {
  /**
   * The positive control beside each refusal: the same client with a good certificate or setting
   * is routed to its builder, so the refusal is the rule's doing and not a broken test client.
   */
  const goodLeaf = async () => {
    const leaf = await clientLeaf(pki, `control-${crypto.randomUUID()}`);
    routes.set(leaf.serial, fakeTarget(leaf.serial));
    return leaf;
  };

  /** Runs the attempt and asserts that the fake builder saw no connection at all. */
  async function expectRefused(attempt: () => Promise<Attempt>): Promise<Attempt> {
    const before = { c: fake.connections, b: fake.bytes };
    const a = await attempt();
    expect(a.data).toBe("");
    expect(a.gaveUp).toBe(false); // closed by the router
    expect(fake.connections).toBe(before.c);
    expect(fake.bytes).toBe(before.b);
    return a;
  }

  test("build A's certificate when the lookup only knows build B's", async () => {
    const a = await clientLeaf(pki, "build-a");
    const b = await clientLeaf(pki, "build-b");
    routes.set(b.serial, fakeTarget("build-b"));
    const refusedBefore = main.router.stats().refused.no_build ?? 0;
    await expectRefused(() => tlsAttempt(main.port, a));
    expect(main.router.stats().refused.no_build).toBe(refusedBefore + 1);
    (await routed(main.port, b)).destroy(); // control: B's certificate is routed
  });

  test("after buildEnded: open connections are closed, new ones refused even if the lookup still answers", async () => {
    const leaf = await clientLeaf(pki, "ending");
    routes.set(leaf.serial, fakeTarget("ending"));
    const open = [await routed(main.port, leaf), await routed(main.port, leaf)];
    const t0 = performance.now();
    main.router.buildEnded("ending");
    await Promise.all(open.map((s) => closedWithin(s, GIVE_UP_MS)));
    console.log(`  buildEnded → both connections closed in ${(performance.now() - t0).toFixed(1)} ms`);
    // The lookup still maps the serial (a stale cache, say): the tombstone refuses anyway.
    await expectRefused(() => tlsAttempt(main.port, leaf));
    expect(main.router.stats().refused.build_ended).toBeGreaterThanOrEqual(1);
  });

  test("an expired certificate", async () => {
    const leaf = await clientLeaf(pki, "expired", { lifetimeMs: 1 });
    routes.set(leaf.serial, fakeTarget("expired"));
    await Bun.sleep(1500);
    await expectRefused(() => tlsAttempt(main.port, leaf));
    (await routed(main.port, await goodLeaf())).destroy(); // control: one still valid is routed
  });

  test("a self-signed certificate", async () => {
    const k = await generateKeyPair();
    const leaf = await forgedLeaf({
      issuerName: "",
      signingKey: k.privateKey,
      issuerPublic: k.publicKey,
      selfSigned: true,
    });
    routes.set(leaf.serial, fakeTarget("self-signed"));
    await expectRefused(() => tlsAttempt(main.port, leaf));
    (await routed(main.port, await goodLeaf())).destroy(); // control: one from the build-client CA is routed
  });

  test("a certificate signed directly by the root (which the TLS layer does trust)", async () => {
    const row = db
      .query("SELECT id, cert_pem, key_sealed FROM certificate_authorities WHERE purpose = 'root'")
      .get() as { id: string; cert_pem: string; key_sealed: Uint8Array };
    const rootPkcs8 = await sealer.unseal(row.key_sealed, `ca:${row.id}`);
    const rootKey = await crypto.subtle.importKey("pkcs8", rootPkcs8 as Uint8Array<ArrayBuffer>, EC, false, ["sign"]);
    const rootCert = new x509.X509Certificate(row.cert_pem);
    const leaf = await forgedLeaf({
      issuerName: rootCert.subject,
      signingKey: rootKey,
      issuerPublic: await rootCert.publicKey.export(),
    });
    routes.set(leaf.serial, fakeTarget("by-root"));
    const before = main.router.stats().refused.wrong_issuer ?? 0;
    await expectRefused(() => tlsAttempt(main.port, leaf));
    // OpenSSL accepted the chain; the router's own issuer check is what refused it.
    expect(main.router.stats().refused.wrong_issuer).toBe(before + 1);
    (await routed(main.port, await goodLeaf())).destroy(); // control: one from the build-client intermediate is routed
  });

  test("a certificate from another appliance's build-client CA", async () => {
    const otherDb = openDatabase(join(dir, "other.db"));
    applyMigrations(otherDb);
    const other = pkiServiceFactory({
      db: otherDb,
      sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
      applianceId: "other",
    });
    await other.ensureHierarchy(["server", "build-client"]);
    const leaf = await clientLeaf(other, "foreign");
    routes.set(leaf.serial, fakeTarget("foreign"));
    await expectRefused(() => tlsAttempt(main.port, leaf));
    await expectRefused(() => tlsAttempt(main.port, { certPem: leaf.chainPem, keyPem: leaf.keyPem }));
    otherDb.close();
    const own = await goodLeaf(); // control: this appliance's, sent the same two ways, is routed
    (await routed(main.port, own)).destroy();
    (await routed(main.port, { certPem: own.chainPem, keyPem: own.keyPem })).destroy();
  });

  test("a server-auth-only certificate (from the server CA, and from the build-client CA)", async () => {
    const fromServerCa = await clientLeaf(pki, "srv-1", { issuer: "server", usage: "server" });
    const fromClientCa = await clientLeaf(pki, "srv-2", { usage: "server" });
    routes.set(fromServerCa.serial, fakeTarget("srv-1"));
    routes.set(fromClientCa.serial, fakeTarget("srv-2"));
    await expectRefused(() => tlsAttempt(main.port, fromServerCa));
    await expectRefused(() => tlsAttempt(main.port, fromClientCa));
    (await routed(main.port, await goodLeaf())).destroy(); // control: a client-auth one from the build-client CA is routed
  });

  test("a client-auth certificate from the server intermediate (right root, wrong intermediate)", async () => {
    const leaf = await clientLeaf(pki, "srv-client", { issuer: "server", usage: "client" });
    routes.set(leaf.serial, fakeTarget("srv-client"));
    // Leaf alone: OpenSSL cannot even build the chain (the server intermediate is not trusted).
    await expectRefused(() => tlsAttempt(main.port, leaf));
    // Leaf + server intermediate: OpenSSL accepts the chain to the root; the router's own check
    // that the issuer is a build-client intermediate refuses it.
    const before = main.router.stats().refused.wrong_issuer ?? 0;
    await expectRefused(() => tlsAttempt(main.port, { certPem: leaf.chainPem, keyPem: leaf.keyPem }));
    expect(main.router.stats().refused.wrong_issuer).toBe(before + 1);
    const good = await goodLeaf(); // control: the build-client intermediate's, sent the same two ways, is routed
    (await routed(main.port, good)).destroy();
    (await routed(main.port, { certPem: good.chainPem, keyPem: good.keyPem })).destroy();
  });

  test("no certificate", async () => {
    await expectRefused(() => tlsAttempt(main.port, null));
    (await routed(main.port, await goodLeaf())).destroy(); // control: the same client with one is routed
  });

  test("TLS 1.1 and below", async () => {
    const leaf = await clientLeaf(pki, "old-tls");
    routes.set(leaf.serial, fakeTarget("old-tls"));
    const a = await expectRefused(() => tlsAttempt(main.port, leaf, { maxVersion: "TLSv1.1", minVersion: "TLSv1" }));
    expect(a.error).not.toBeNull();
    // Control: the same client allowed up to TLS 1.2 is routed (so TLS 1.0 was offered and possible).
    const ok = await routed(main.port, leaf, { maxVersion: "TLSv1.2", minVersion: "TLSv1" });
    expect(ok.getProtocol()).toBe("TLSv1.2");
    ok.destroy();
  });

  test("TLS 1.2 with a non-AEAD (CBC) cipher suite; TLS 1.2 with GCM is fine", async () => {
    const leaf = await clientLeaf(pki, "tls12");
    routes.set(leaf.serial, fakeTarget("tls12"));
    await expectRefused(() =>
      tlsAttempt(main.port, leaf, {
        maxVersion: "TLSv1.2",
        ciphers: "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA",
      }),
    );
    const ok = await routed(main.port, leaf); // TLS 1.3 by default
    ok.destroy();
    const ok12 = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port: main.port,
        servername: "localhost",
        ca: rootPem,
        cert: leaf.certPem,
        key: leaf.keyPem,
        maxVersion: "TLSv1.2",
      });
      s.on("secureConnect", () => s.write("ping"));
      s.once("data", () => resolve(s));
      s.on("error", reject);
    });
    expect(ok12.getProtocol()).toBe("TLSv1.2");
    expect(ok12.getCipher().name).toContain("GCM");
    ok12.destroy();
  });

  test("plain TCP", async () => {
    await expectRefused(
      () =>
        new Promise<Attempt>((resolve) => {
          const t0 = performance.now();
          let data = "";
          const s = net.connect(main.port, "127.0.0.1", () =>
            s.write("POST /moby.buildkit.v1.Control/ListWorkers HTTP/1.1\r\nHost: x\r\n\r\n"),
          );
          s.on("data", (d) => (data += d.toString("latin1")));
          s.on("error", () => {});
          s.on("close", () =>
            resolve({
              data: data.includes("ListWorkers") ? data : "",
              error: null,
              closedAfterMs: performance.now() - t0,
              gaveUp: false,
            }),
          );
        }),
    );
  });

  test("a handshake that never completes is closed after handshakeTimeoutMs", async () => {
    const before = main.router.stats().refused.handshake_timeout ?? 0;
    // Both at once: each waits out the whole deadline.
    const silent = new Promise<number>((resolve) => {
      const t0 = performance.now();
      const s = net.connect(main.port, "127.0.0.1"); // not even one byte
      s.on("error", () => {});
      s.on("close", () => resolve(performance.now() - t0));
    });
    const a = await expectRefused(
      () =>
        new Promise<Attempt>((resolve) => {
          const t0 = performance.now();
          // The first bytes of a TLS record header, then silence (slowloris).
          const s = net.connect(main.port, "127.0.0.1", () => s.write(Buffer.from([0x16, 0x03, 0x01])));
          s.on("error", () => {});
          s.on("close", () => resolve({ data: "", error: null, closedAfterMs: performance.now() - t0, gaveUp: false }));
        }),
    );
    const also = await silent;
    console.log(
      `  stalled handshakes closed after ${a.closedAfterMs.toFixed(0)} ms and ${also.toFixed(0)} ms (limit ${HANDSHAKE_TIMEOUT_MS} ms)`,
    );
    // Not before the deadline (timers never fire early); and closed by it, not by the idle timeout.
    for (const ms of [a.closedAfterMs, also]) {
      expect(ms).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 50);
      expect(ms).toBeLessThan(GIVE_UP_MS);
    }
    expect(main.router.stats().refused.handshake_timeout).toBe(before + 2);
  });
});

describe("limits", () => {
  test("maxConnectionsPerBuild: the extra connection is refused, others are unaffected", async () => {
    const { router, port } = await startRouter({ handshakeTimeoutMs: 2000, maxConnectionsPerBuild: 2 });
    const leaf = await clientLeaf(pki, "capped");
    const other = await clientLeaf(pki, "uncapped");
    routes.set(leaf.serial, fakeTarget("capped"));
    routes.set(other.serial, fakeTarget("uncapped"));
    const open = [await routed(port, leaf), await routed(port, leaf)];
    const before = fake.connections;
    const third = await tlsAttempt(port, leaf);
    expect(third.data).toBe("");
    expect(fake.connections).toBe(before);
    expect(router.stats().refused.too_many_connections).toBe(1);
    // Another build is not limited by this one's count; a slot freed is usable again.
    (await routed(port, other)).destroy();
    open[0]!.destroy();
    await until(
      "the router to count the freed slot",
      () => router.stats().builds.find((b) => b.buildId === "capped")?.open === 1,
    );
    (await routed(port, leaf)).destroy();
    open[1]!.destroy();
  });

  test("idle timeout closes a silent connection, activity keeps one open", async () => {
    // 2 s of silence, against a write every 100 ms: a stalled timer on a busy machine would have
    // to miss 19 writes in a row before the busy connection looked idle.
    const { port } = await startRouter({ idleTimeoutMs: 2000 });
    const leaf = await clientLeaf(pki, "idle");
    routes.set(leaf.serial, fakeTarget("idle"));
    const idle = await routed(port, leaf);
    const busy = await routed(port, leaf);
    const keepBusy = setInterval(() => busy.write("x"), 100);
    const ms = await closedWithin(idle, GIVE_UP_MS);
    expect(ms).toBeGreaterThan(1500);
    expect(busy.destroyed).toBe(false);
    clearInterval(keepBusy);
    await closedWithin(busy, GIVE_UP_MS);
  });
});

describe("metrics", () => {
  test("per-build and total connections and bytes", async () => {
    const { router, port, metrics } = await startRouter();
    const leaf = await clientLeaf(pki, "metered");
    routes.set(leaf.serial, fakeTarget("metered"));
    const s = await routed(port, leaf);
    s.write("x".repeat(1000));
    await new Promise<void>((r) => {
      let got = 0;
      s.on("data", (d) => (got += d.length) >= 1000 && r());
    });
    const text = metrics.render();
    expect(text).toContain('slipway_router_build_connections_open{build_id="metered",platform="linux/amd64"} 1');
    expect(text).toContain('slipway_router_build_connections{build_id="metered",platform="linux/amd64"} 1');
    expect(text).toContain(
      'slipway_router_build_bytes{build_id="metered",platform="linux/amd64",direction="client_to_builder"} 1004',
    );
    expect(text).toContain(
      'slipway_router_build_bytes{build_id="metered",platform="linux/amd64",direction="builder_to_client"} 1004',
    );
    expect(text).toContain("slipway_router_connections_open 1");
    expect(text).toContain("slipway_router_connections_total 1");
    expect(text).toContain('slipway_router_bytes_total{direction="client_to_builder"} 1004');
    expect(text).toContain('slipway_router_bytes_total{direction="builder_to_client"} 1004');
    s.destroy();
    await until("the router to see the connection closed", () => router.stats().open === 0);
    expect(metrics.render()).toContain("slipway_router_connections_open 0");
  });
});

// ---------------------------------------------------------------------------------------------
// Real BuildKit: dockerd's embedded one behind POST /grpc (Upgrade: h2c).

// ListWorkers over HTTP/2 and the protobuf reader are shared with the builder image's checks.
const listWorkers = (session: http2.ClientHttp2Session) => callListWorkers(session);

const h2connect = (port: number, leaf: IssuedLeaf) => {
  const session = http2.connect(`https://localhost:${port}`, {
    ca: rootPem,
    cert: leaf.certPem,
    key: leaf.keyPem,
    servername: "localhost",
  });
  session.on("error", () => {});
  return session;
};

integrationSuite("router → real BuildKit (host dockerd, /grpc h2c upgrade)", missingDocker, () => {
  const dockerTarget = (buildId: string): RouteTarget => ({
    buildId,
    projectId: "p1",
    platform: "linux/amd64",
    socketPath: DOCKER_SOCK,
    runtime: "dockerd",
  });

  test("ListWorkers through the router returns the workers", async () => {
    const leaf = await clientLeaf(pki, "grpc-1");
    routes.set(leaf.serial, dockerTarget("grpc-1"));
    const session = h2connect(main.port, leaf);
    try {
      const { status, message } = await listWorkers(session);
      expect(status).toBe("0");
      expect(message.length).toBeGreaterThan(0);
      // At least one worker with an id.
      const records = decodeListWorkers(message);
      expect(records.length).toBeGreaterThan(0);
      expect(records[0]!.id.length).toBeGreaterThan(0);
      console.log(`  ${records.length} worker(s), first id ${records[0]!.id}`);
      const build = main.router.stats().builds.find((b) => b.buildId === "grpc-1")!;
      expect(build.bytesBuilderToClient).toBeGreaterThan(message.length);
    } finally {
      session.close();
    }
  });

  test("buildEnded closes an open HTTP/2 connection to BuildKit; the certificate opens nothing after", async () => {
    const leaf = await clientLeaf(pki, "grpc-2");
    routes.set(leaf.serial, dockerTarget("grpc-2"));
    const session = h2connect(main.port, leaf);
    expect((await listWorkers(session)).status).toBe("0");
    const closed = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`HTTP/2 session still open after ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
      session.once("close", () => {
        clearTimeout(timer);
        resolve(performance.now() - t0);
      });
    });
    const t0 = performance.now();
    main.router.buildEnded("grpc-2");
    const ms = await closed;
    console.log(`  buildEnded → HTTP/2 session to BuildKit closed in ${ms.toFixed(1)} ms`);
    // A new connection with the same certificate gets no answer from BuildKit.
    const again = h2connect(main.port, leaf);
    const r = await listWorkers(again).then(
      (x) => x.status,
      (e: Error) => `error: ${e.message}`,
    );
    expect(r).not.toBe("0");
    again.destroy();
  });
});
