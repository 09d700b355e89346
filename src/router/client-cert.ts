/**
 * @module router/client-cert
 * The router's own check of a client certificate, after OpenSSL has verified the chain.
 *
 * Why both: OpenSSL (as Bun/Node drive it) only accepts a chain that ends at a self-signed
 * root, so the TLS trust store must hold the root as well as the build-client intermediates —
 * which also makes it accept leaves the root signs directly, or that the `server` intermediate
 * signs. The TLS layer therefore proves "chains to our root, in date, signature valid"; this
 * module proves "issued by one of the build-client intermediates, for clientAuth, in date".
 */
import { X509Certificate } from "node:crypto";
import { ConnectionRefused } from "./errors.ts";

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits PEM text (one or several bundles) into single certificates. */
export function splitPem(pem: string | readonly string[]): string[] {
  const all = typeof pem === "string" ? [pem] : pem;
  return all.flatMap((p) => p.match(PEM_CERT) ?? []);
}

/**
 * One spelling for a serial whatever produced it ("0F:3B…", "f3b…", "00ab…"): lowercase hex,
 * no separators, minimal even length — the pki's own 32-hex-char serials (top bit clear,
 * first byte non-zero) come out unchanged.
 */
export function normalizeSerial(serial: string): string {
  const hex = serial
    .replace(/[^0-9a-fA-F]/g, "")
    .toLowerCase()
    .replace(/^0+/, "");
  if (hex === "") return "00";
  return hex.length % 2 ? `0${hex}` : hex;
}

export interface VerifiedClient {
  serial: string;
  subject: string;
  notAfter: Date;
}

export type ClientCertVerifier = (der: Uint8Array, now?: Date) => VerifiedClient;

/** `intermediates`: PEM of every build-client intermediate currently trusted (rotation: several). */
export function clientCertVerifierFactory(intermediatesPem: string | readonly string[]): ClientCertVerifier {
  const intermediates = splitPem(intermediatesPem).map((p) => new X509Certificate(p));
  if (intermediates.length === 0) throw new TypeError("router: no build-client intermediate certificate given");
  for (const ca of intermediates) {
    if (!ca.ca) throw new TypeError(`router: ${ca.subject} is not a CA certificate`);
  }

  return (der, now = new Date()) => {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(der);
    } catch {
      throw new ConnectionRefused("bad_certificate", "unparseable client certificate");
    }
    // The signature is the proof; the name match keeps a shared key (should one ever exist) from
    // vouching for another CA's leaves. Not X509Certificate.checkIssued: under Bun 1.4.5 it
    // returns false even for a genuine issuer.
    const issuer = intermediates.find((ca) => leaf.issuer === ca.subject && leaf.verify(ca.publicKey));
    if (!issuer)
      throw new ConnectionRefused(
        "wrong_issuer",
        `client certificate not issued by a build-client CA (issuer ${leaf.issuer})`,
      );
    if (leaf.ca) throw new ConnectionRefused("bad_certificate", "client certificate is a CA certificate");
    // keyUsage here is the extended key usage list; undefined means "any", which we do not accept.
    if (!(leaf.keyUsage ?? []).includes(CLIENT_AUTH))
      throw new ConnectionRefused("bad_certificate", "client certificate lacks clientAuth");
    const t = now.getTime();
    if (t < Date.parse(leaf.validFrom) || t > Date.parse(leaf.validTo))
      throw new ConnectionRefused("bad_certificate", "client certificate not valid now");
    return { serial: normalizeSerial(leaf.serialNumber), subject: leaf.subject, notAfter: new Date(leaf.validTo) };
  };
}
