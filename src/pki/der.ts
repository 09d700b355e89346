/**
 * @module pki/der
 * Just enough DER to write a leaf certificate: tag-length-value with definite lengths, and the
 * few primitive types X.509 leaves use. Hand-written because the generic ASN.1 object model cost
 * ~1.5 ms per certificate (and GC pauses); this is the whole encoder for a fixed structure.
 */
import { isIPv4, isIPv6 } from "node:net";

export type Der = Uint8Array;

export const cat = (parts: Der[]): Der => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

function length(n: number): Der {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One allocation per value: a leaf nests ~60 of them, each copied once into its parent. */
export const tlv = (tag: number, ...content: Der[]): Der => {
  let n = 0;
  for (const c of content) n += c.length;
  const len = length(n);
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  let o = 1 + len.length;
  for (const c of content) {
    out.set(c, o);
    o += c.length;
  }
  return out;
};
export const seq = (...items: Der[]) => tlv(0x30, ...items);
export const set = (...items: Der[]) => tlv(0x31, ...items);
/** Explicit context tag [n] (constructed). */
export const explicit = (n: number, inner: Der) => tlv(0xa0 | n, inner);
export const octets = (b: Der) => tlv(0x04, b);
export const bits = (b: Der, unused = 0) => tlv(0x03, Uint8Array.of(unused), b);
export const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
export const ia5 = (tag: number, s: string) => tlv(tag, new TextEncoder().encode(s));

/** A non-negative INTEGER from big-endian bytes (a leading zero is added if the top bit is set). */
export function unsigned(b: Der): Der {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0]! & 0x80) !== 0 ? cat([Uint8Array.of(0), v]) : v);
}
export const smallInt = (n: number) => unsigned(Uint8Array.of(n));

/** OIDs are a handful of constants: each encoded once (callers only copy the result). */
const oids = new Map<string, Der>();

export function oid(dotted: string): Der {
  let encoded = oids.get(dotted);
  if (!encoded) oids.set(dotted, (encoded = encodeOid(dotted)));
  return encoded;
}

function encodeOid(dotted: string): Der {
  const arcs = dotted.split(".").map(Number);
  const out: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
export function time(d: Date): Der {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 19).replace(/[-:T]/g, "")}Z`;
  const year = d.getUTCFullYear();
  return year < 2050
    ? tlv(0x17, new TextEncoder().encode(digits.slice(2)))
    : tlv(0x18, new TextEncoder().encode(digits));
}

/** 4 or 16 bytes for an iPAddress general name. */
export function ipBytes(ip: string): Der {
  if (isIPv4(ip)) return Uint8Array.from(ip.split(".").map(Number));
  if (!isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
  const [head, tail = ""] = ip.split("::") as [string, string?];
  const groups = (s: string) => (s ? s.split(":") : []);
  const h = groups(head);
  const t = ip.includes("::") ? groups(tail) : [];
  const all = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Reads one TLV at `at`: its tag, where its content starts, and where it ends. */
export function readTlv(b: Der, at = 0): { tag: number; start: number; end: number } {
  const tag = b[at]!;
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  return { tag, start, end: start + len };
}

/** The subjectPublicKey bits of a SubjectPublicKeyInfo (what the key identifier hashes). */
export function spkiKeyBits(spki: Der): Der {
  const outer = readTlv(spki);
  const alg = readTlv(spki, outer.start);
  const key = readTlv(spki, alg.end);
  if (outer.tag !== 0x30 || alg.tag !== 0x30 || key.tag !== 0x03) throw new Error("malformed SubjectPublicKeyInfo");
  return spki.subarray(key.start + 1, key.end); // skip the unused-bits byte
}
