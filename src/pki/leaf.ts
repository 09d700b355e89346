/**
 * @module pki/leaf
 * The fast path for leaf certificates: the TBSCertificate is written as DER directly (./der.ts)
 * and signed synchronously by node:crypto (BoringSSL). @peculiar/x509's generator took ~3.6 ms
 * per certificate, an asn1-schema object model ~1.5 ms (bench/pki.ts measures this one). Issuances run one at a time through a
 * queue that yields to the event loop between certificates, so a burst of 1,000 never stalls it.
 */
import * as der from "./der.ts";
import { createHash, createPrivateKey, generateKeyPairSync, sign as signDer, type KeyObject } from "node:crypto";
import { x509, type LeafNames, type LeafUsage } from "./x509.ts";

const ECDSA_SHA256 = "1.2.840.10045.4.3.2";

/** What a CA contributes to every leaf it signs, computed once. */
export interface LeafSigner {
  /** The CA's subject, DER: the leaves' issuer. */
  issuerDer: Uint8Array;
  /** Its subject key identifier: the leaves' authority key identifier. */
  keyIdBytes: Uint8Array;
  notAfter: Date;
  key: KeyObject;
}

export function leafSigner(caCertPem: string, pkcs8: Uint8Array): LeafSigner {
  const ca = new x509.X509Certificate(caCertPem);
  const ski = ca.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new Error("CA certificate has no subject key identifier");
  return {
    issuerDer: new Uint8Array(ca.subjectName.toArrayBuffer()),
    keyIdBytes: new Uint8Array(Buffer.from(ski.keyId, "hex")),
    notAfter: ca.notAfter,
    key: createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" }),
  };
}

/** A fresh ECDSA P-256 key: SPKI DER for the certificate, PKCS#8 PEM for the client. */
export function freshKey(): { spki: Uint8Array; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    spki: publicKey.export({ type: "spki", format: "der" }),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  };
}

/** Relative distinguished names, outermost first, e.g. [["O", "Slipway"], ["CN", "x"]]. */
export type Rdns = [attribute: "CN" | "O" | "OU", value: string][];
const ATTRIBUTE_OID = { CN: "2.5.4.3", O: "2.5.4.10", OU: "2.5.4.11" } as const;

export interface LeafParams {
  serial: string;
  subject: Rdns;
  spki: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  usage: LeafUsage;
  names: LeafNames;
}

export interface SignedLeaf {
  der: Uint8Array;
  pem: string;
  /** RFC 4514-style, for the issuance record. */
  subject: string;
}

/** Extensions every leaf of a usage carries, encoded once: CA:false, digitalSignature, one EKU. */
const FIXED_EXTENSIONS: Record<LeafUsage, Uint8Array> = {
  server: fixedExtensions("server"),
  client: fixedExtensions("client"),
};

function fixedExtensions(usage: LeafUsage): Uint8Array {
  const exts = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
  ];
  return der.cat(exts.map((e) => new Uint8Array(e.rawData)));
}

const ext = (id: string, value: Uint8Array) => der.seq(der.oid(id), der.octets(value));

/** Builds and signs one leaf (synchronous): clientAuth or serverAuth only, never a CA. */
export function signLeaf(ca: LeafSigner, p: LeafParams): SignedLeaf {
  // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
  const keyId = new Uint8Array(createHash("sha1").update(der.spkiKeyBits(p.spki)).digest());
  const sans = [
    ...(p.names.dns ?? []).map((d) => der.ia5(0x82, d)),
    ...(p.names.ip ?? []).map((ip) => der.tlv(0x87, der.ipBytes(ip))),
    ...(p.names.uri ?? []).map((u) => der.ia5(0x86, u)),
  ];
  const extensions = [
    FIXED_EXTENSIONS[p.usage],
    ext("2.5.29.14", der.octets(keyId)),
    ext("2.5.29.35", der.seq(der.tlv(0x80, ca.keyIdBytes))),
    ...(sans.length > 0 ? [ext("2.5.29.17", der.seq(...sans))] : []),
  ];
  const subject = der.seq(
    ...p.subject.map(([attr, value]) => der.set(der.seq(der.oid(ATTRIBUTE_OID[attr]), der.utf8(value)))),
  );
  const algorithm = der.seq(der.oid(ECDSA_SHA256));
  const tbs = der.seq(
    der.explicit(0, der.smallInt(2)), // v3
    der.unsigned(Buffer.from(p.serial, "hex")),
    algorithm,
    ca.issuerDer,
    der.seq(der.time(p.notBefore), der.time(p.notAfter)),
    subject,
    p.spki,
    der.explicit(3, der.seq(...extensions)),
  );
  const signature = signDer("sha256", tbs, ca.key); // DER ECDSA-Sig-Value
  const cert = der.seq(tbs, algorithm, der.bits(signature));
  const b64 = Buffer.from(cert).toString("base64").replace(/.{64}/g, "$&\n");
  return {
    der: cert,
    pem: `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END CERTIFICATE-----`,
    subject: p.subject.map(([a, v]) => `${a}=${v}`).join(", "),
  };
}

/** Runs jobs one at a time and yields to the event loop once the queue's own jobs have run for
 * more than `budgetMs` without a break: a burst of issuances makes callers wait, but never blocks
 * timers or sockets for long. The budget counts the jobs' time only and starts afresh whenever the
 * queue empties: counting wall time since the last yield made nearly every job under concurrent
 * admissions wait a whole turn of a busy event loop (≈9 ms per certificate at 8 clients while its
 * work took ≈0.2 ms). Bun.sleep(0) is the yield that works here: measured with 0.3 ms jobs, it kept
 * the worst timer gap at ~1.6 ms, where setTimeout(0) let gaps reach 37 ms. */
export function yieldingQueue(budgetMs = 0.5) {
  let tail: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  let ran = 0;
  return <T>(job: () => T | Promise<T>): Promise<T> => {
    waiting++;
    const run = tail.then(async () => {
      if (ran > budgetMs) {
        await Bun.sleep(0);
        ran = 0;
      }
      const t = performance.now();
      try {
        return await job();
      } finally {
        ran += performance.now() - t;
        if (--waiting === 0) ran = 0; // the queue let go of the event loop: a fresh budget
      }
    });
    tail = run.catch(() => {});
    return run;
  };
}
