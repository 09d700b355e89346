/**
 * @module agent/dns
 * Just enough of the DNS wire format (RFC 1035, AAAA from RFC 3596) for the agent: ask a
 * resolver for A and AAAA records with their TTLs (the system's getaddrinfo hides TTLs and
 * would read the very /etc/hosts block the agent writes), and answer questions with pinned
 * addresses (the pinning responder for container scopes). UDP only; a truncated answer is used
 * as far as it goes. A reply counts only from the server asked, to the random id asked under and
 * for the question asked; of its records, only those along the CNAME chain of the name asked.
 */
import { isIP } from "node:net";
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseTarget } from "../wire/egress/targets.ts";

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;

export interface Question {
  id: number;
  name: string;
  type: number;
  flags: number;
}

export interface AnswerRecord {
  name: string;
  type: number;
  ttl: number;
  data: string;
}

function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.replace(/\.$/, "").split(".")) {
    if (!label) continue;
    const b = new TextEncoder().encode(label);
    out.push(b.length, ...b);
  }
  out.push(0);
  return out;
}

function readName(buf: Uint8Array, offset: number): [string, number] {
  const labels: string[] = [];
  let off = offset;
  let end = -1;
  for (let hops = 0; hops < 64; hops++) {
    const len = buf[off]!;
    if (len === undefined) throw new Error("truncated name");
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if (len === 0) {
      if (end < 0) end = off + 1;
      return [labels.join(".").toLowerCase(), end];
    }
    labels.push(new TextDecoder().decode(buf.subarray(off + 1, off + 1 + len)));
    off += 1 + len;
  }
  throw new Error("name compression loop");
}

export function encodeQuery(id: number, name: string, type: number): Uint8Array {
  return new Uint8Array([
    id >> 8,
    id & 255,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...encodeName(name),
    type >> 8,
    type & 255,
    0,
    1,
  ]);
}

export function parseQuestion(buf: Uint8Array): Question | null {
  try {
    if (buf.length < 17) return null;
    const qd = (buf[4]! << 8) | buf[5]!;
    if (qd !== 1) return null;
    const [name, off] = readName(buf, 12);
    return {
      id: (buf[0]! << 8) | buf[1]!,
      flags: (buf[2]! << 8) | buf[3]!,
      name,
      type: (buf[off]! << 8) | buf[off + 1]!,
    };
  } catch {
    return null;
  }
}

function addrBytes(addr: string): number[] {
  if (isIP(addr) === 4) return addr.split(".").map(Number);
  const [h, t] = addr.split("::");
  const hw = h ? h.split(":") : [];
  const tw = t !== undefined ? (t ? t.split(":") : []) : [];
  const words = [...hw, ...Array(addr.includes("::") ? 8 - hw.length - tw.length : 0).fill("0"), ...tw].map((w) =>
    parseInt(w, 16),
  );
  return words.flatMap((w) => [w >> 8, w & 255]);
}

/** An answer to `q`: `rcode` 0 with A/AAAA records, or an error code (3 NXDOMAIN, 5 REFUSED). */
export function encodeAnswer(q: Question, addrs: string[], ttl: number, rcode = 0): Uint8Array {
  const want = q.type === TYPE_A ? 4 : q.type === TYPE_AAAA ? 6 : 0;
  const records = rcode === 0 ? addrs.filter((a) => isIP(a) === want) : [];
  const qname = encodeName(q.name);
  const flags = 0x8000 | (q.flags & 0x0100) | 0x0080 | rcode; // QR, RD copied, RA
  const out = [
    q.id >> 8,
    q.id & 255,
    flags >> 8,
    flags & 255,
    0,
    1,
    records.length >> 8,
    records.length & 255,
    0,
    0,
    0,
    0,
    ...qname,
    q.type >> 8,
    q.type & 255,
    0,
    1,
  ];
  for (const a of records) {
    const b = addrBytes(a);
    out.push(
      0xc0,
      12,
      q.type >> 8,
      q.type & 255,
      0,
      1,
      (ttl >>> 24) & 255,
      (ttl >>> 16) & 255,
      (ttl >>> 8) & 255,
      ttl & 255,
      0,
      b.length,
      ...b,
    );
  }
  return new Uint8Array(out);
}

export function parseAnswer(buf: Uint8Array): { id: number; rcode: number; records: AnswerRecord[] } {
  const id = (buf[0]! << 8) | buf[1]!;
  const rcode = buf[3]! & 15;
  const qd = (buf[4]! << 8) | buf[5]!;
  const an = (buf[6]! << 8) | buf[7]!;
  let off = 12;
  for (let i = 0; i < qd; i++) off = readName(buf, off)[1] + 4;
  const records: AnswerRecord[] = [];
  for (let i = 0; i < an && off < buf.length; i++) {
    const [name, o] = readName(buf, off);
    const type = (buf[o]! << 8) | buf[o + 1]!;
    const ttl = ((buf[o + 4]! << 24) | (buf[o + 5]! << 16) | (buf[o + 6]! << 8) | buf[o + 7]!) >>> 0;
    const len = (buf[o + 8]! << 8) | buf[o + 9]!;
    const rd = buf.subarray(o + 10, o + 10 + len);
    let data = "";
    if (type === TYPE_A && len === 4) data = [...rd].join(".");
    else if (type === TYPE_AAAA && len === 16) {
      const w: string[] = [];
      for (let k = 0; k < 16; k += 2) w.push(((rd[k]! << 8) | rd[k + 1]!).toString(16));
      const t = parseTarget(w.join(":"));
      data = typeof t === "string" || t.kind !== "cidr" ? w.join(":") : t.cidr.replace(/\/128$/, "");
    } else if (type === TYPE_CNAME) data = readName(buf, o + 10)[0];
    records.push({ name, type, ttl, data });
    off = o + 10 + len;
  }
  return { id, rcode, records };
}

/** Nameservers from a resolv.conf (default /etc/resolv.conf). */
export function systemNameservers(path = "/etc/resolv.conf"): string[] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((a): a is string => !!a && isIP(a.split("%")[0]!) !== 0);
  } catch {
    return [];
  }
}

/** A query id from the system's CSPRNG: an off-path spoofer has to guess it. */
export function randomQueryId(): number {
  return randomInt(0, 65536);
}

/** The question of a query or reply (exactly one), lower-cased, with its class; null when malformed. */
function questionOf(buf: Uint8Array): { name: string; type: number; cls: number } | null {
  try {
    if (buf.length < 17 || ((buf[4]! << 8) | buf[5]!) !== 1) return null;
    const [name, off] = readName(buf, 12);
    if (off + 4 > buf.length) return null;
    return { name, type: (buf[off]! << 8) | buf[off + 1]!, cls: (buf[off + 2]! << 8) | buf[off + 3]! };
  } catch {
    return null;
  }
}

/** Is `reply` the answer to the query sent under `id` asking `asked` (QR set, same question)? */
function answers(reply: Uint8Array, id: number, asked: { name: string; type: number; cls: number }): boolean {
  if (reply.length < 12 || ((reply[0]! << 8) | reply[1]!) !== id || (reply[2]! & 0x80) === 0) return false;
  const q = questionOf(reply);
  return !!q && q.name === asked.name && q.type === asked.type && q.cls === asked.cls;
}

/**
 * One UDP exchange with `server` (port 53 unless given as addr#port): `query` goes out under a
 * fresh random id from a socket connected to the server (the kernel drops datagrams from any
 * other address or port), and only a reply to that id with the same question is taken; it comes
 * back carrying the query's own id.
 */
export async function exchange(server: string, query: Uint8Array, timeoutMs = 2000): Promise<Uint8Array> {
  const [host, port] = server.includes("#") ? [server.split("#")[0]!, Number(server.split("#")[1])] : [server, 53];
  const asked = questionOf(query);
  if (!asked) throw new Error("not a DNS query with one question");
  const id = randomQueryId();
  const sent = new Uint8Array(query);
  sent[0] = id >> 8;
  sent[1] = id & 255;
  const got = Promise.withResolvers<Uint8Array>();
  const sock = await Bun.udpSocket({
    connect: { hostname: host, port },
    socket: {
      data(_s, buf) {
        const b = new Uint8Array(buf);
        if (answers(b, id, asked)) got.resolve(b);
      },
      // ICMP unreachable from the server: keep waiting for the timeout (or another server).
      error() {},
    },
  });
  let timer: Timer | undefined;
  try {
    sock.send(sent);
    const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)));
    const r = await Promise.race([got.promise, timeout]);
    if (!r) throw new Error(`no DNS answer from ${server} within ${timeoutMs} ms`);
    const out = new Uint8Array(r);
    out[0] = query[0]!;
    out[1] = query[1]!;
    return out;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}

export interface Resolved {
  addrs: string[];
  /** Seconds; the smallest TTL along the answer (CNAMEs included). */
  ttl: number;
}

/**
 * The addresses of type `type` that `records` give for `name`: only the records along its CNAME
 * chain (at most 16 links; a loop gives nothing), never others the answer happens to carry.
 */
export function chainAddresses(name: string, records: AnswerRecord[], type: number): { addrs: string[]; ttl: number } {
  let current = name.toLowerCase().replace(/\.$/, "");
  const seen = new Set([current]);
  let ttl = Infinity;
  for (let links = 0; ; links++) {
    const cname = records.find((r) => r.type === TYPE_CNAME && r.name === current);
    if (!cname) break;
    if (links === 16 || seen.has(cname.data)) return { addrs: [], ttl: Math.min(ttl, cname.ttl) };
    ttl = Math.min(ttl, cname.ttl);
    current = cname.data;
    seen.add(current);
  }
  const addrs: string[] = [];
  for (const r of records) {
    if (r.type !== type || r.name !== current || !r.data) continue;
    addrs.push(r.data);
    ttl = Math.min(ttl, r.ttl);
  }
  return { addrs, ttl };
}

/** All A and AAAA records of `name` (along its CNAME chain), from the first server that answers. */
export async function resolveAll(name: string, servers: string[], timeoutMs = 2000): Promise<Resolved> {
  let lastErr: unknown = new Error("no DNS servers configured");
  for (const server of servers) {
    try {
      const out: string[] = [];
      let ttl = Infinity;
      for (const type of [TYPE_A, TYPE_AAAA]) {
        const a = parseAnswer(await exchange(server, encodeQuery(0, name, type), timeoutMs));
        if (a.rcode !== 0 && a.rcode !== 3) throw new Error(`DNS error ${a.rcode} for ${name} from ${server}`);
        const chain = chainAddresses(name, a.records, type);
        out.push(...chain.addrs);
        ttl = Math.min(ttl, chain.ttl);
      }
      return { addrs: [...new Set(out)], ttl: Number.isFinite(ttl) ? ttl : 60 };
    } catch (e) {
      lastErr = e;
    }
  }
  throw lastErr;
}
