/**
 * @module pki/authority
 * The appliance's certificate hierarchy: a root that signs intermediates only, and intermediates
 * by purpose (`server` for the API and build endpoint, `build-client` for per-build client
 * certificates) that sign leaves. CA private keys are sealed under the master key in SQLite and
 * unsealed into non-extractable WebCrypto keys in memory.
 */
import type { Database } from "bun:sqlite";
import type { Sealer } from "../secrets/index.ts";
import { NotFoundError } from "../errors.ts";
import {
  BACKDATE_MS,
  SIGN_ALG,
  caExtensions,
  exportPkcs8,
  generateKeyPair,
  importSigningKey,
  leafExtensions,
  pemPrivateKey,
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
}

export type Pki = ReturnType<typeof pkiServiceFactory>;

export function pkiServiceFactory({ db, sealer, applianceId, now = () => new Date() }: PkiDeps) {
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

  const activeRow = (purpose: CaPurpose) =>
    db.query("SELECT * FROM certificate_authorities WHERE purpose = ? AND retired_at IS NULL").get(purpose) as AuthorityRow | null;

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
    db.query(
      `INSERT INTO certificate_authorities (id, purpose, parent_id, serial, subject, cert_pem, key_sealed, not_before, not_after, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(row.id, row.purpose, row.parent_id, row.serial, row.subject, row.cert_pem, row.key_sealed, row.not_before, row.not_after, now().toISOString());
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

    /** Signs a fresh leaf with a fresh key from the active intermediate of `req.issuer`. */
    async issueLeaf(req: LeafRequest): Promise<IssuedLeaf> {
      const ca = activeRow(req.issuer);
      if (!ca) throw new NotFoundError(`no active ${req.issuer} CA`);
      const { cert: caCert, publicKey: caPublic } = await parsedCa(ca);
      const keys = await generateKeyPair();
      const serial = randomSerial();
      const t = now().getTime();
      const notAfter = new Date(Math.min(t + req.lifetimeMs, caCert.notAfter.getTime()));
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial,
        subject: new x509.Name([{ CN: [req.commonName] }, { O: ["Slipway"] }]),
        issuer: caCert.subject,
        notBefore: new Date(t - BACKDATE_MS),
        notAfter,
        signingAlgorithm: SIGN_ALG,
        publicKey: keys.publicKey,
        signingKey: await signingKey(ca),
        extensions: await leafExtensions(keys.publicKey, caPublic, req.usage, req.names),
      });
      const certPem = cert.toString("pem");
      db.query(
        `INSERT INTO certificate_issuances (serial, ca_id, usage, subject, names, not_before, not_after, requester, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(serial, ca.id, req.usage, cert.subject, JSON.stringify(req.names), cert.notBefore.toISOString(), notAfter.toISOString(), req.requester, now().toISOString());
      return {
        serial,
        certPem,
        chainPem: `${certPem}\n${ca.cert_pem}\n`,
        keyPem: pemPrivateKey(await exportPkcs8(keys.privateKey)),
        notAfter,
      };
    },
  };
}
