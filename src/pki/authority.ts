/**
 * @module pki/authority
 * The appliance's certificate hierarchy: a root that signs intermediates only, and intermediates
 * by purpose (`server` for the API and build endpoint, `build-client` for per-build client
 * certificates) that sign leaves. CA private keys are sealed under the master key in SQLite and
 * unsealed into non-extractable WebCrypto keys in memory.
 */
import type { Database } from "bun:sqlite";
import { X509Certificate } from "node:crypto";
import type { Sealer } from "../secrets/index.ts";
import type { AuditService } from "../auth/audit.ts";
import { InvalidInputError, NotFoundError } from "../errors.ts";
import { freshKey, leafSigner, signLeaf, yieldingQueue, type LeafSigner, type Rdns } from "./leaf.ts";
import {
  BACKDATE_MS,
  SIGN_ALG,
  caExtensions,
  exportPkcs8,
  generateKeyPair,
  importSigningKey,
  randomSerial,
  x509,
  type LeafNames,
  type LeafUsage,
} from "./x509.ts";

export type CaPurpose = "root" | "server" | "build-client";

const DAY = 86_400_000;
const ROOT_LIFETIME = 20 * 365 * DAY;
const INTERMEDIATE_LIFETIME = 10 * 365 * DAY;

export interface AuthorityRow {
  id: string;
  purpose: CaPurpose;
  parent_id: string | null;
  serial: string;
  subject: string;
  cert_pem: string;
  key_sealed: Uint8Array;
  not_before: string;
  not_after: string;
}

/** A CA as `slipway pki list` shows it. */
export interface AuthoritySummary extends Pick<AuthorityRow, "id" | "purpose" | "serial" | "not_after"> {
  retired_at: string | null;
}

/** A CA as the administrator's page shows it (api/routes/admin): no key material. */
export interface AuthorityDescription {
  id: string;
  purpose: CaPurpose;
  parent_id: string | null;
  serial: string;
  subject: string;
  fingerprint_sha256: string;
  not_before: string;
  not_after: string;
  retired_at: string | null;
}

export interface IssuedLeaf {
  serial: string;
  certPem: string;
  /** Leaf then intermediate: what a TLS server sends. */
  chainPem: string;
  /** PKCS#8 PEM. Returned once; never stored. */
  keyPem: string;
  notAfter: Date;
}

export interface LeafRequest {
  issuer: Exclude<CaPurpose, "root">;
  usage: LeafUsage;
  commonName: string;
  names: LeafNames;
  lifetimeMs: number;
  /** Recorded in the issuance audit, e.g. `appliance:api-server`. */
  requester: string;
}

export interface PkiDeps {
  db: Database;
  sealer: Sealer;
  applianceId: string;
  now?: () => Date;
  /** Records issuances and rotations in the audit log (the issuance table records them always). */
  audit?: Pick<AuditService, "record">;
  /** No client certificate lives longer than this, whatever the build's timeout (default 25 h). */
  maxClientCertLifetimeMs?: number;
}

export interface BuildCertRequest {
  orgId: string;
  projectId: string;
  buildId: string;
  platform: string;
  /** The build's hard timeout plus a margin; capped by maxClientCertLifetimeMs. */
  lifetimeMs: number;
  /** A PKCS#10 request (ECDSA P-256): only its public key is used. Without one, a fresh key is
   * generated and returned once. */
  csrPem?: string;
  requester: string;
  /** Runs in the transaction that records the issuance (the caller's own record of the
   * certificate): if it throws, nothing of the issuance is kept. */
  onIssued?: (issued: { serial: string; notAfter: Date }) => void;
}

export interface IssuedBuildCert {
  serial: string;
  certPem: string;
  chainPem: string;
  /** Null when the client sent a CSR: its key never leaves it. */
  keyPem: string | null;
  notAfter: Date;
  /** The URI SAN naming appliance, organization, project, build and platform. */
  uri: string;
}

export type Pki = ReturnType<typeof pkiServiceFactory>;

// Over 120 lines as a whole: a service factory, whose methods (each short) are the units; the
// closure only shares prepared statements and the parsed CA cache.
export function pkiServiceFactory({
  db,
  sealer,
  applianceId,
  now = () => new Date(),
  audit,
  maxClientCertLifetimeMs = 25 * 3600_000,
}: PkiDeps) {
  const signingKeys = new Map<string, Promise<CryptoKey>>();
  // Parsing a CA certificate and exporting its public key costs more than signing a leaf.
  const caCerts = new Map<string, Promise<{ cert: x509.X509Certificate; publicKey: CryptoKey }>>();
  const parsedCa = (row: AuthorityRow) => {
    let c = caCerts.get(row.id);
    if (!c) {
      const cert = new x509.X509Certificate(row.cert_pem);
      c = cert.publicKey.export(crypto).then((publicKey) => ({ cert, publicKey }));
      caCerts.set(row.id, c);
    }
    return c;
  };

  /**
   * trustBundle's answers, read once per change instead of on every build connection: dropped by
   * this service's own writes (insertAuthority, retirements), by a commit from another connection
   * (`slipway pki` beside serve: SQLite's data_version moves) and when the soonest of them expires.
   */
  const bundles = new Map<CaPurpose, { pems: string[]; until: number; dataVersion: number }>();
  const dataVersion = () => (db.query("PRAGMA data_version").get() as { data_version: number }).data_version;

  const activeRow = (purpose: CaPurpose) =>
    db
      .query("SELECT * FROM certificate_authorities WHERE purpose = ? AND retired_at IS NULL")
      .get(purpose) as AuthorityRow | null;

  const signingKey = (row: AuthorityRow) => {
    let k = signingKeys.get(row.id);
    if (!k) {
      k = sealer.unseal(row.key_sealed, `ca:${row.id}`).then(importSigningKey);
      signingKeys.set(row.id, k);
    }
    return k;
  };

  const subjectFor = (purpose: CaPurpose) =>
    `CN=Slipway ${purpose === "root" ? "Root" : purpose === "server" ? "Server" : "Build Client"} CA ${applianceId}, O=Slipway`;

  /** Makes a CA of `purpose` (signed by the active root unless it is the root). Not yet stored. */
  async function makeAuthority(purpose: CaPurpose): Promise<AuthorityRow> {
    const keys = await generateKeyPair();
    const id = crypto.randomUUID();
    const serial = randomSerial();
    const t = now().getTime();
    const notBefore = new Date(t - BACKDATE_MS);
    const subject = subjectFor(purpose);
    let cert: x509.X509Certificate;
    let parentId: string | null = null;
    if (purpose === "root") {
      cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial,
        name: subject,
        notBefore,
        notAfter: new Date(t + ROOT_LIFETIME),
        signingAlgorithm: SIGN_ALG,
        keys,
        extensions: await caExtensions(keys.publicKey, { pathLength: 1 }),
      });
    } else {
      const root = activeRow("root");
      if (!root) throw new NotFoundError("no active root CA");
      const { cert: rootCert, publicKey: rootPublic } = await parsedCa(root);
      parentId = root.id;
      cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial,
        subject,
        issuer: rootCert.subject,
        notBefore,
        notAfter: new Date(Math.min(t + INTERMEDIATE_LIFETIME, rootCert.notAfter.getTime())),
        signingAlgorithm: SIGN_ALG,
        publicKey: keys.publicKey,
        signingKey: await signingKey(root),
        extensions: await caExtensions(keys.publicKey, { pathLength: 0 }, rootPublic),
      });
    }
    return {
      id,
      purpose,
      parent_id: parentId,
      serial,
      subject,
      cert_pem: cert.toString("pem"),
      key_sealed: await sealer.seal(await exportPkcs8(keys.privateKey), `ca:${id}`),
      not_before: cert.notBefore.toISOString(),
      not_after: cert.notAfter.toISOString(),
    };
  }

  function insertAuthority(row: AuthorityRow) {
    bundles.clear();
    db.query(
      `INSERT INTO certificate_authorities (id, purpose, parent_id, serial, subject, cert_pem, key_sealed, not_before, not_after, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      row.id,
      row.purpose,
      row.parent_id,
      row.serial,
      row.subject,
      row.cert_pem,
      row.key_sealed,
      row.not_before,
      row.not_after,
      now().toISOString(),
    );
  }

  const signers = new Map<string, Promise<LeafSigner>>();
  const leafSignerFor = (row: AuthorityRow) => {
    let p = signers.get(row.id);
    if (!p) {
      p = sealer.unseal(row.key_sealed, `ca:${row.id}`).then((pkcs8) => leafSigner(row.cert_pem, pkcs8));
      signers.set(row.id, p);
    }
    return p;
  };
  const queue = yieldingQueue();

  /**
   * Signs a leaf from the active intermediate of `req.issuer` and records it. `spki` is the
   * client's key (from a CSR), or null for a fresh key — generated inside the queue too, so a
   * burst of requests does all its work in the queue's small, yielding steps.
   */
  function sign(
    req: LeafRequest,
    spki: Uint8Array | null,
    subject: Rdns,
    alsoRecord?: (serial: string, notAfter: Date) => void,
  ) {
    return queue(async () => {
      const ca = activeRow(req.issuer);
      if (!ca) throw new NotFoundError(`no active ${req.issuer} CA`);
      const signer = await leafSignerFor(ca);
      const fresh = spki ? null : freshKey();
      const serial = randomSerial();
      const t = now().getTime();
      const notAfter = new Date(Math.min(t + req.lifetimeMs, signer.notAfter.getTime()));
      const notBefore = new Date(t - BACKDATE_MS);
      const cert = signLeaf(signer, {
        serial,
        subject,
        spki: spki ?? fresh!.spki,
        notBefore,
        notAfter,
        usage: req.usage,
        names: req.names,
      });
      // One commit for the issuance, its audit record and the caller's record of it.
      db.transaction(() => {
        db.query(
          `INSERT INTO certificate_issuances (serial, ca_id, usage, subject, names, not_before, not_after, requester, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          serial,
          ca.id,
          req.usage,
          cert.subject,
          JSON.stringify(req.names),
          notBefore.toISOString(),
          notAfter.toISOString(),
          req.requester,
          now().toISOString(),
        );
        alsoRecord?.(serial, notAfter);
      })();
      return {
        serial,
        certPem: cert.pem,
        chainPem: `${cert.pem}\n${ca.cert_pem}\n`,
        notAfter,
        keyPem: fresh?.keyPem ?? null,
      };
    });
  }

  return {
    /**
     * Creates whatever is missing of the root and the given intermediates, and returns what it
     * created. Idempotent: a start interrupted halfway finishes the job on the next start.
     */
    async ensureHierarchy(purposes: Exclude<CaPurpose, "root">[] = ["server"]): Promise<AuthorityRow[]> {
      const created: AuthorityRow[] = [];
      if (!activeRow("root")) {
        const root = await makeAuthority("root");
        insertAuthority(root);
        created.push(root);
      }
      for (const p of purposes) {
        if (activeRow(p)) continue;
        const row = await makeAuthority(p);
        insertAuthority(row);
        created.push(row);
      }
      return created;
    },

    rootCertificatePem(): string {
      const root = activeRow("root");
      if (!root) throw new NotFoundError("no active root CA");
      return root.cert_pem;
    },

    /** Every unexpired root, the active one first: the contents of ca.pem. */
    trustedRootsPem(): string {
      return this.trustBundle("root").join("\n");
    },

    /** Signs a fresh leaf with a fresh key from the active intermediate of `req.issuer`. */
    async issueLeaf(req: LeafRequest): Promise<IssuedLeaf> {
      const signed = await sign(req, null, [
        ["CN", req.commonName],
        ["O", "Slipway"],
      ]);
      return { ...signed, keyPem: signed.keyPem! };
    },

    /**
     * A per-build client certificate: clientAuth only, subject and URI SAN naming appliance,
     * organization, project, build and platform; from the client's CSR or with a fresh key.
     */
    async issueBuildClientCertificate(req: BuildCertRequest): Promise<IssuedBuildCert> {
      const uri = `slipway://${applianceId}/org/${req.orgId}/project/${req.projectId}/build/${req.buildId}/platform/${req.platform}`;
      const subject: Rdns = [
        ["O", `slipway:${applianceId}`],
        ["OU", `org:${req.orgId}`],
        ["OU", `project:${req.projectId}`],
        ["CN", `build:${req.buildId}:${req.platform}`],
      ];
      const lifetimeMs = Math.min(req.lifetimeMs, maxClientCertLifetimeMs);
      const leafReq: LeafRequest = {
        issuer: "build-client",
        usage: "client",
        commonName: "",
        names: { uri: [uri] },
        lifetimeMs,
        requester: req.requester,
      };
      const csrKey = req.csrPem ? await csrPublicKey(req.csrPem) : null;
      const signed = await sign(leafReq, csrKey, subject, (serial, notAfter) => {
        audit?.record({
          orgId: req.orgId,
          actor: req.requester,
          action: "certificate.issue",
          target: serial,
          details: {
            usage: "client",
            build_id: req.buildId,
            project_id: req.projectId,
            platform: req.platform,
            not_after: notAfter.toISOString(),
            from_csr: csrKey !== null,
          },
        });
        req.onIssued?.({ serial, notAfter });
      });
      return { ...signed, keyPem: signed.keyPem, uri };
    },

    /** Every CA, retired ones too, by purpose and age (`slipway pki list`). */
    list(): AuthoritySummary[] {
      return db
        .query(
          "SELECT id, purpose, serial, not_after, retired_at FROM certificate_authorities ORDER BY purpose, created_at",
        )
        .all() as AuthoritySummary[];
    },

    /**
     * Every CA with what an administrator checks: subject, SHA-256 fingerprint of the
     * certificate, validity and whether it is retired. Certificates only, never a key.
     */
    describe(): AuthorityDescription[] {
      const rows = db
        .query(
          "SELECT id, purpose, parent_id, serial, subject, cert_pem, not_before, not_after, retired_at FROM certificate_authorities ORDER BY purpose = 'root' DESC, purpose, created_at",
        )
        .all() as (Omit<AuthorityRow, "key_sealed"> & { retired_at: string | null })[];
      return rows.map(({ cert_pem, ...r }) => ({
        ...r,
        fingerprint_sha256: new X509Certificate(cert_pem).fingerprint256,
      }));
    },

    /** PEMs of every unexpired CA of `purpose`, the active one first: what verifiers trust, so
     * certificates from a retired intermediate stay valid until they expire. */
    trustBundle(purpose: CaPurpose): string[] {
      const t = now().getTime();
      const version = dataVersion();
      const kept = bundles.get(purpose);
      if (kept && kept.dataVersion === version && t < kept.until) return [...kept.pems];
      const rows = db
        .query(
          "SELECT cert_pem, not_after FROM certificate_authorities WHERE purpose = ? AND not_after > ? ORDER BY retired_at IS NOT NULL, created_at DESC",
        )
        .all(purpose, new Date(t).toISOString()) as { cert_pem: string; not_after: string }[];
      const pems = rows.map((r) => r.cert_pem);
      const until = Math.min(...rows.map((r) => Date.parse(r.not_after)));
      bundles.set(purpose, { pems, until, dataVersion: version });
      return [...pems];
    },

    /** A new intermediate for `purpose` signs from now on; the old one is retired, still trusted. */
    async rotateIntermediate(purpose: Exclude<CaPurpose, "root">, requester: string): Promise<AuthorityRow> {
      const next = await makeAuthority(purpose);
      db.transaction(() => {
        bundles.clear();
        db.query("UPDATE certificate_authorities SET retired_at = ? WHERE purpose = ? AND retired_at IS NULL").run(
          now().toISOString(),
          purpose,
        );
        insertAuthority(next);
        audit?.record({
          actor: requester,
          action: "ca.rotate",
          target: next.id,
          details: { purpose, serial: next.serial, not_after: next.not_after },
        });
      })();
      return next;
    },

    /** A new root (new key) and new intermediates under it. Old ones stay trusted until expiry:
     * clients must be given the new ca.pem (which then holds both roots). */
    async rotateRoot(requester: string): Promise<AuthorityRow[]> {
      const root = await makeAuthority("root");
      const purposes = (
        db
          .query("SELECT DISTINCT purpose FROM certificate_authorities WHERE purpose <> 'root' AND retired_at IS NULL")
          .all() as { purpose: Exclude<CaPurpose, "root"> }[]
      ).map((r) => r.purpose);
      db.transaction(() => {
        bundles.clear();
        db.query("UPDATE certificate_authorities SET retired_at = ? WHERE purpose = 'root' AND retired_at IS NULL").run(
          now().toISOString(),
        );
        insertAuthority(root);
        audit?.record({
          actor: requester,
          action: "ca.rotate",
          target: root.id,
          details: { purpose: "root", serial: root.serial, not_after: root.not_after },
        });
      })();
      const created = [root];
      for (const p of purposes) created.push(await this.rotateIntermediate(p, requester));
      return created;
    },
  };
}

/** The public key (SPKI DER) of a PKCS#10 request, after checking its self-signature; ECDSA
 * P-256 only. */
async function csrPublicKey(pem: string): Promise<Uint8Array> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    throw new InvalidInputError("the certificate request is not a PEM PKCS#10 request", [
      { pointer: "/csr", detail: "expected -----BEGIN CERTIFICATE REQUEST-----" },
    ]);
  }
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") {
    throw new InvalidInputError("certificate requests must carry an ECDSA P-256 key", [
      { pointer: "/csr", detail: "ECDSA P-256 keys only" },
    ]);
  }
  if (!(await csr.verify()))
    throw new InvalidInputError("the certificate request's signature does not verify", [
      { pointer: "/csr", detail: "bad self-signature" },
    ]);
  return new Uint8Array(csr.publicKey.rawData);
}
