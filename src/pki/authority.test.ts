/**
 * @module pki/authority.test
 * Covers pkiServiceFactory on a real migrated SQLite file: ensureHierarchy (root + server
 * intermediate, idempotent), the CA profiles (self-signed root, pathLen 1/0, keyCertSign), leaf
 * issuance (chain, EKU per usage, SANs, 128-bit serials, 60 s backdate, lifetime, P-256 PKCS#8
 * key, audit row), that no plain private key reaches the database file, and a real TLS handshake
 * with Bun.serve/fetch trusting only the appliance root.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotFoundError } from "../errors.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { createSealer, type Sealer } from "../secrets/index.ts";
import { pkiServiceFactory, type IssuedLeaf, type LeafRequest, type Pki } from "./authority.ts";
import { EC_ALG, x509 } from "./x509.ts";

let dir: string;
let db: Database;
let sealer: Sealer;
let pki: Pki;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-pki-"));
  db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  sealer = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
  pki = pkiServiceFactory({ db, sealer, applianceId: "test" });
});
afterEach(() => {
  try {
    db.close();
  } catch {}
  rmSync(dir, { recursive: true, force: true });
});

const DAY = 86_400_000;

function serverLeafRequest(extra: Partial<LeafRequest> = {}): LeafRequest {
  return {
    issuer: "server",
    usage: "server",
    commonName: "localhost",
    names: { dns: ["localhost"], ip: ["127.0.0.1"] },
    lifetimeMs: DAY,
    requester: "test",
    ...extra,
  };
}

/** The PEM blocks of a chain, in order. */
function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function authorities() {
  return db
    .query("SELECT id, purpose, parent_id, cert_pem, key_sealed FROM certificate_authorities ORDER BY purpose")
    .all() as {
    id: string;
    purpose: string;
    parent_id: string | null;
    cert_pem: string;
    key_sealed: Uint8Array;
  }[];
}

function caCert(purpose: "root" | "server"): X509Certificate {
  const row = authorities().find((r) => r.purpose === purpose);
  if (!row) throw new Error(`no ${purpose} CA`);
  return new X509Certificate(row.cert_pem);
}

describe("ensureHierarchy", () => {
  test("creates the root and the server intermediate once", async () => {
    const created = await pki.ensureHierarchy(["server"]);
    expect(created.map((r) => r.purpose)).toEqual(["root", "server"]);
    const rows = authorities();
    expect(rows.map((r) => r.purpose)).toEqual(["root", "server"]);
    const root = rows.find((r) => r.purpose === "root")!;
    const server = rows.find((r) => r.purpose === "server")!;
    expect(root.parent_id).toBeNull();
    expect(server.parent_id).toBe(root.id);

    expect(await pki.ensureHierarchy(["server"])).toEqual([]);
    expect(authorities().length).toBe(2);
    expect(pki.rootCertificatePem()).toBe(root.cert_pem);
  });

  test("adds a missing intermediate under the existing root", async () => {
    await pki.ensureHierarchy(["server"]);
    const rootPem = pki.rootCertificatePem();
    const created = await pki.ensureHierarchy(["server", "build-client"]);
    expect(created.map((r) => r.purpose)).toEqual(["build-client"]);
    const bc = new X509Certificate(created[0]!.cert_pem);
    expect(bc.verify(new X509Certificate(rootPem).publicKey)).toBe(true);
    expect(pki.rootCertificatePem()).toBe(rootPem);
  });

  test("the root is a self-signed CA with pathLen 1 and keyCertSign", async () => {
    await pki.ensureHierarchy(["server"]);
    const root = caCert("root");
    expect(root.ca).toBe(true);
    expect(root.subject).toBe(root.issuer);
    expect(root.subject).toContain("Slipway Root CA test");
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.checkIssued(root)).toBe(true);

    const parsed = new x509.X509Certificate(root.toString());
    const bc = parsed.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.pathLength).toBe(1);
    expect(bc.critical).toBe(true);
    const ku = parsed.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(ku.usages & x509.KeyUsageFlags.digitalSignature).toBeFalsy();
  });

  test("the server intermediate is a CA issued by the root with pathLen 0", async () => {
    await pki.ensureHierarchy(["server"]);
    const root = caCert("root");
    const inter = caCert("server");
    expect(inter.ca).toBe(true);
    expect(inter.issuer).toBe(root.subject);
    expect(inter.checkIssued(root)).toBe(true);
    expect(inter.verify(root.publicKey)).toBe(true);
    expect(inter.verify(inter.publicKey)).toBe(false);
    expect(new Date(inter.validTo).getTime()).toBeLessThanOrEqual(new Date(root.validTo).getTime());

    const parsed = new x509.X509Certificate(inter.toString());
    const bc = parsed.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.pathLength).toBe(0);
    expect(parsed.getExtension(x509.KeyUsagesExtension)!.usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
  });

  test("CA private keys are sealed: not PKCS#8 as stored, PKCS#8 once unsealed with ca:<id>", async () => {
    await pki.ensureHierarchy(["server"]);
    for (const row of authorities()) {
      await expect(
        crypto.subtle.importKey("pkcs8", row.key_sealed as Uint8Array<ArrayBuffer>, EC_ALG, false, ["sign"]),
      ).rejects.toThrow();
      const pkcs8 = await sealer.unseal(row.key_sealed, `ca:${row.id}`);
      const key = await crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, EC_ALG, true, ["sign"]);
      // The unsealed key is the one whose public half is in the certificate.
      const jwk = await crypto.subtle.exportKey("jwk", key);
      const certJwk = new X509Certificate(row.cert_pem).publicKey.export({ format: "jwk" });
      expect({ x: jwk.x, y: jwk.y }).toEqual({ x: certJwk.x, y: certJwk.y });
    }
  });

  test("a pki built on the same database and master key signs with the stored CA", async () => {
    await pki.ensureHierarchy(["server"]);
    const again = pkiServiceFactory({ db, sealer, applianceId: "test" });
    expect(await again.ensureHierarchy(["server"])).toEqual([]);
    const leaf = await again.issueLeaf(serverLeafRequest());
    expect(new X509Certificate(leaf.certPem).checkIssued(caCert("server"))).toBe(true);
  });

  test("issueLeaf without the intermediate is a NotFoundError", async () => {
    const err = await pki.issueLeaf(serverLeafRequest()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain("no active server CA");
  });
});

describe("issueLeaf", () => {
  test("a server leaf: chain, serverAuth only, not a CA, SANs, serial, validity, P-256 key", async () => {
    await pki.ensureHierarchy(["server"]);
    const before = Date.now();
    const leaf = await pki.issueLeaf(serverLeafRequest());
    const after = Date.now();
    const cert = new X509Certificate(leaf.certPem);
    const inter = caCert("server");

    expect(cert.checkIssued(inter)).toBe(true);
    expect(cert.verify(inter.publicKey)).toBe(true);
    expect(cert.verify(caCert("root").publicKey)).toBe(false);
    expect(cert.ca).toBe(false);

    const blocks = pemBlocks(leaf.chainPem);
    expect(blocks.length).toBe(2);
    expect(new X509Certificate(blocks[0]!).fingerprint256).toBe(cert.fingerprint256);
    expect(new X509Certificate(blocks[1]!).fingerprint256).toBe(inter.fingerprint256);

    const parsed = new x509.X509Certificate(leaf.certPem);
    expect(parsed.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth]);
    expect(parsed.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    const ku = parsed.getExtension(x509.KeyUsagesExtension)!.usages;
    expect(ku & x509.KeyUsageFlags.digitalSignature).toBeTruthy();
    expect(ku & x509.KeyUsageFlags.keyCertSign).toBeFalsy();
    const san = parsed.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON();
    expect(san).toContainEqual({ type: "dns", value: "localhost" });
    expect(san).toContainEqual({ type: "ip", value: "127.0.0.1" });
    expect(cert.checkHost("localhost")).toBe("localhost");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.subject).toContain("CN=localhost");

    expect(leaf.serial).toMatch(/^[0-9a-f]{32}$/);
    expect(cert.serialNumber.toLowerCase()).toBe(leaf.serial);

    const notBefore = parsed.notBefore.getTime();
    const notAfter = parsed.notAfter.getTime();
    // X.509 times have 1 s resolution; the backdate is 60 s.
    expect(notBefore).toBeGreaterThanOrEqual(before - 60_000 - 1000);
    expect(notBefore).toBeLessThanOrEqual(after - 60_000);
    expect(notAfter).toBeGreaterThanOrEqual(before + DAY - 1000);
    expect(notAfter).toBeLessThanOrEqual(after + DAY);
    expect(Math.abs(leaf.notAfter.getTime() - notAfter)).toBeLessThan(1000);

    expect(leaf.keyPem).toStartWith("-----BEGIN PRIVATE KEY-----");
    const key = createPrivateKey(leaf.keyPem);
    expect(key.asymmetricKeyType).toBe("ec");
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    // The key belongs to the certificate.
    const pub = key.export({ format: "jwk" });
    const certPub = cert.publicKey.export({ format: "jwk" });
    expect({ x: pub.x, y: pub.y }).toEqual({ x: certPub.x, y: certPub.y });
  });

  test("serials differ between leaves, and each issuance is recorded with its requester", async () => {
    await pki.ensureHierarchy(["server"]);
    const a = await pki.issueLeaf(serverLeafRequest({ requester: "appliance:api-server" }));
    const b = await pki.issueLeaf(serverLeafRequest({ requester: "test" }));
    expect(a.serial).not.toBe(b.serial);
    const rows = db.query("SELECT * FROM certificate_issuances ORDER BY requester").all() as Record<string, unknown>[];
    expect(rows.length).toBe(2);
    const serverCaId = authorities().find((r) => r.purpose === "server")!.id;
    expect(rows[0]).toMatchObject({
      serial: a.serial,
      requester: "appliance:api-server",
      usage: "server",
      ca_id: serverCaId,
    });
    expect(rows[1]).toMatchObject({ serial: b.serial, requester: "test", usage: "server", ca_id: serverCaId });
    expect(JSON.parse(rows[0]!.names as string)).toEqual({ dns: ["localhost"], ip: ["127.0.0.1"] });
    expect(String(rows[0]!.subject)).toContain("CN=localhost");
    expect(rows[0]!.not_after).toBe(a.notAfter.toISOString());
  });

  test("a client leaf has clientAuth only", async () => {
    await pki.ensureHierarchy(["server", "build-client"]);
    const leaf = await pki.issueLeaf({
      issuer: "build-client",
      usage: "client",
      commonName: "build bld_1",
      names: { uri: ["slipway://org/o/project/p/build/bld_1"] },
      lifetimeMs: 3_600_000,
      requester: "build:bld_1",
    });
    const parsed = new x509.X509Certificate(leaf.certPem);
    expect(parsed.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(parsed.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: "url", value: "slipway://org/o/project/p/build/bld_1" },
    ]);
    const row = db.query("SELECT usage, requester FROM certificate_issuances WHERE serial = ?").get(leaf.serial);
    expect(row).toEqual({ usage: "client", requester: "build:bld_1" });
  });

  test("a leaf never outlives its intermediate", async () => {
    await pki.ensureHierarchy(["server"]);
    const leaf = await pki.issueLeaf(serverLeafRequest({ lifetimeMs: 100 * 365 * DAY }));
    expect(leaf.notAfter.getTime()).toBeLessThanOrEqual(new Date(caCert("server").validTo).getTime());
  });
});

describe("no plain private key in the database", () => {
  test("the SQLite files contain neither PEM keys nor a leaf's PKCS#8 DER", async () => {
    await pki.ensureHierarchy(["server", "build-client"]);
    const leaves: IssuedLeaf[] = [];
    for (let i = 0; i < 3; i++) leaves.push(await pki.issueLeaf(serverLeafRequest()));
    db.close();
    const bytes = Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
    expect(bytes.length).toBeGreaterThan(0);
    expect(bytes.includes(Buffer.from("PRIVATE KEY"))).toBe(false);
    // The certificates are there (control), the keys are not.
    expect(bytes.includes(Buffer.from("BEGIN CERTIFICATE"))).toBe(true);
    for (const leaf of leaves) {
      const der = createPrivateKey(leaf.keyPem).export({ format: "der", type: "pkcs8" });
      // The last 64 bytes hold the private scalar and the public point: unique per key.
      expect(bytes.includes(der.subarray(der.length - 64))).toBe(false);
    }
  });
});

describe("TLS with an issued server certificate", () => {
  test("fetch trusting the appliance root succeeds; without it the handshake fails", async () => {
    await pki.ensureHierarchy(["server"]);
    const leaf = await pki.issueLeaf(serverLeafRequest());
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      tls: { cert: leaf.chainPem, key: leaf.keyPem },
      fetch: () => new Response("ok"),
    });
    try {
      const url = `https://localhost:${server.port}/`;
      const res = await fetch(url, { tls: { ca: pki.rootCertificatePem() } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("ok");
      await expect(fetch(url)).rejects.toThrow();
      // Another appliance's root does not do either.
      const otherDb = openDatabase(join(dir, "other.db"));
      try {
        applyMigrations(otherDb);
        const other = pkiServiceFactory({ db: otherDb, sealer, applianceId: "other" });
        await other.ensureHierarchy(["server"]);
        await expect(fetch(url, { tls: { ca: other.rootCertificatePem() } })).rejects.toThrow();
      } finally {
        otherDb.close();
      }
    } finally {
      server.stop(true);
    }
  });
});
