/**
 * @module pki/build-certs.test
 * Per-build client certificates from the real CA hierarchy on a real SQLite file: profile
 * (clientAuth only, URI SAN, 128-bit serial, backdate, capped lifetime), CSRs (only P-256, only
 * with a valid self-signature, key never returned), audit, and rotation of intermediates and of
 * the root with old certificates still trusted until they expire.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Database } from "bun:sqlite";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditServiceFactory } from "../auth/audit.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { InvalidInputError } from "../errors.ts";
import { createSealer } from "../secrets/index.ts";
import { pkiServiceFactory, type Pki } from "./authority.ts";
import { x509 } from "./x509.ts";

let dir: string;
let db: Database;
let pki: Pki;
const HOUR = 3600_000;
const req = {
  orgId: "org_a",
  projectId: "prj_1",
  buildId: "bld_1",
  platform: "amd64",
  lifetimeMs: 2 * HOUR,
  requester: "build:bld_1",
};

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-buildcert-"));
  db = openDatabase(join(dir, "x.db"));
  applyMigrations(db);
  pki = pkiServiceFactory({
    db,
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    applianceId: "app1",
    audit: auditServiceFactory({ db }),
    maxClientCertLifetimeMs: 3 * HOUR,
  });
  await pki.ensureHierarchy(["server", "build-client"]);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const intermediates = (purpose: string) =>
  pki.trustBundle(purpose as "build-client").map((p) => new X509Certificate(p));
const verifiesAgainst = (leafPem: string, cas: X509Certificate[]) => {
  const leaf = new X509Certificate(leafPem);
  return cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
};

describe("per-build client certificates", () => {
  test("profile: clientAuth only, names the build, 128-bit serial, backdated, chains to the build-client CA only", async () => {
    const t0 = Date.now();
    const c = await pki.issueBuildClientCertificate(req);
    const t1 = Date.now();
    const cert = new x509.X509Certificate(c.certPem);
    expect(c.uri).toBe("slipway://app1/org/org_a/project/prj_1/build/bld_1/platform/amd64");
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: "url", value: c.uri },
    ]);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    expect(cert.subject).toBe("O=slipway:app1, OU=org:org_a, OU=project:prj_1, CN=build:bld_1:amd64");
    expect(c.serial).toMatch(/^[0-9a-f]{32}$/);
    // Issued between t0 and t1 (the certificate's times are whole seconds, hence the 1 s below t0).
    const within = (at: Date, offset: number) => {
      expect(at.getTime()).toBeGreaterThanOrEqual(t0 + offset - 1000);
      expect(at.getTime()).toBeLessThanOrEqual(t1 + offset);
    };
    within(cert.notBefore, -60_000);
    within(cert.notAfter, 2 * HOUR);
    expect(c.keyPem).toContain("BEGIN PRIVATE KEY");
    expect(verifiesAgainst(c.certPem, intermediates("build-client"))).toBe(true);
    expect(verifiesAgainst(c.certPem, intermediates("server"))).toBe(false);
    expect(verifiesAgainst(c.certPem, intermediates("root"))).toBe(false); // the root signs intermediates only
  });

  test("lifetime is capped by configuration; issuance is recorded and audited without the key", async () => {
    const c = await pki.issueBuildClientCertificate({ ...req, lifetimeMs: 48 * HOUR });
    expect(c.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(3 * HOUR);
    expect(db.query("SELECT usage, requester FROM certificate_issuances WHERE serial = ?").get(c.serial)).toEqual({
      usage: "client",
      requester: "build:bld_1",
    });
    const audit = db.query("SELECT org_id, action, details FROM audit_log WHERE target = ?").get(c.serial) as {
      org_id: string;
      action: string;
      details: string;
    };
    expect(audit).toMatchObject({ org_id: "org_a", action: "certificate.issue" });
    expect(JSON.parse(audit.details)).toMatchObject({ build_id: "bld_1", platform: "amd64", from_csr: false });
    expect(JSON.stringify(db.query("SELECT * FROM certificate_issuances").all())).not.toContain("PRIVATE KEY");
  });

  test("the caller's record joins the issuance's transaction: when it fails, nothing of the issuance is kept", async () => {
    const count = () =>
      (
        db
          .query("SELECT (SELECT count(*) FROM certificate_issuances) + (SELECT count(*) FROM audit_log) AS n")
          .get() as { n: number }
      ).n;
    const before = count();
    let seen = "";
    await expect(
      pki.issueBuildClientCertificate({
        ...req,
        onIssued: ({ serial }) => {
          seen = serial;
          throw new Error("the build ended meanwhile");
        },
      }),
    ).rejects.toThrow("the build ended meanwhile");
    expect(seen).toMatch(/^[0-9a-f]{32}$/);
    expect(count()).toBe(before);
    const ok = await pki.issueBuildClientCertificate({ ...req, onIssued: ({ serial }) => void (seen = serial) });
    expect(seen).toBe(ok.serial);
    expect(count()).toBe(before + 2); // the issuance and its audit record
  });

  test("from a CSR: the client's key is certified, no key is returned", async () => {
    const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=ignored",
      keys,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    });
    const c = await pki.issueBuildClientCertificate({ ...req, csrPem: csr.toString("pem") });
    expect(c.keyPem).toBeNull();
    const issued = new x509.X509Certificate(c.certPem);
    const spki = (k: CryptoKey) => crypto.subtle.exportKey("spki", k).then((b) => Buffer.from(b).toString("hex"));
    expect(await spki(await issued.publicKey.export(crypto))).toBe(await spki(keys.publicKey));
    expect(issued.subject).toContain("CN=build:bld_1:amd64"); // the CSR's subject is ignored
  });

  test("bad CSRs are refused with a clear error", async () => {
    const rsa = (await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=x",
      keys: rsa,
      signingAlgorithm: { name: "RSASSA-PKCS1-v1_5" },
    });
    await expect(pki.issueBuildClientCertificate({ ...req, csrPem: rsaCsr.toString("pem") })).rejects.toThrow(
      "ECDSA P-256",
    );
    await expect(pki.issueBuildClientCertificate({ ...req, csrPem: "not a csr" })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    // A CSR whose self-signature does not match its key (someone else's public key).
    const mine = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const other = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const forged = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=x",
      keys: { publicKey: other.publicKey, privateKey: mine.privateKey },
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    });
    await expect(pki.issueBuildClientCertificate({ ...req, csrPem: forged.toString("pem") })).rejects.toThrow(
      "does not verify",
    );
    expect((db.query("SELECT count(*) AS n FROM certificate_issuances").get() as { n: number }).n).toBe(0);
  });
});

describe("rotation", () => {
  test("a new build-client intermediate signs new certificates; old ones stay trusted until they expire", async () => {
    const before = await pki.issueBuildClientCertificate(req);
    await pki.rotateIntermediate("build-client", "test");
    const after = await pki.issueBuildClientCertificate(req);
    const bundle = intermediates("build-client");
    expect(bundle).toHaveLength(2);
    expect(verifiesAgainst(before.certPem, bundle)).toBe(true);
    expect(verifiesAgainst(after.certPem, bundle)).toBe(true);
    expect(verifiesAgainst(after.certPem, [bundle[0]!])).toBe(true); // the active one first
    expect(verifiesAgainst(before.certPem, [bundle[0]!])).toBe(false);
    // Once the retired intermediate has expired it leaves the bundle. The bundle is kept between
    // changes: a write from another connection (an offline `slipway pki` beside serve) is seen.
    const other = openDatabase(join(dir, "x.db"));
    try {
      other.run(
        "UPDATE certificate_authorities SET not_after = '2000-01-01T00:00:00.000Z' WHERE purpose = 'build-client' AND retired_at IS NOT NULL",
      );
    } finally {
      other.close();
    }
    expect(intermediates("build-client")).toHaveLength(1);
    expect(db.query("SELECT action FROM audit_log WHERE action = 'ca.rotate'").all()).toHaveLength(1);
  });

  test("a kept trust bundle drops a CA the moment it expires", async () => {
    let t = Date.now();
    const clocked = pkiServiceFactory({
      db,
      sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
      applianceId: "app1",
      now: () => new Date(t),
    });
    await pki.rotateIntermediate("build-client", "test");
    db.run(
      "UPDATE certificate_authorities SET not_after = ? WHERE purpose = 'build-client' AND retired_at IS NOT NULL",
      [new Date(t + HOUR).toISOString()],
    );
    expect(clocked.trustBundle("build-client")).toHaveLength(2);
    expect(clocked.trustBundle("build-client")).toHaveLength(2);
    t += 2 * HOUR;
    expect(clocked.trustBundle("build-client")).toHaveLength(1);
  });

  test("a re-issued root gets new intermediates; both roots are trusted (ca.pem) until the old expires", async () => {
    const oldRoot = new X509Certificate(pki.rootCertificatePem());
    const before = await pki.issueBuildClientCertificate(req);
    const created = await pki.rotateRoot("test");
    expect(created.map((c) => c.purpose).sort()).toEqual(["build-client", "root", "server"]);
    const newRoot = new X509Certificate(pki.rootCertificatePem());
    expect(newRoot.serialNumber).not.toBe(oldRoot.serialNumber);
    const roots = pki.trustedRootsPem();
    expect(roots).toContain(pki.rootCertificatePem());
    expect(roots.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const after = await pki.issueBuildClientCertificate(req);
    const active = new X509Certificate(pki.trustBundle("build-client")[0]!);
    expect(active.checkIssued(newRoot) && active.verify(newRoot.publicKey)).toBe(true);
    expect(verifiesAgainst(after.certPem, [active])).toBe(true);
    expect(verifiesAgainst(before.certPem, intermediates("build-client"))).toBe(true);
  });
});
