/**
 * @module test/support/egress/zone-server
 * A DNS server the resolver tests run on a loopback address: a handler decides, per question,
 * which records to answer with (any name, any type, CNAMEs, records for names never asked) and
 * may send extra datagrams of its own first (a spoofer knows the query's id and port: the test
 * plays it, from another socket). Records are written out in full, so what reaches the client is
 * exactly what the handler chose.
 */
import { parseQuestion, TYPE_A, TYPE_AAAA, TYPE_CNAME, type Question } from "../../../src/agent/dns.ts";
import { isIP } from "node:net";

export interface ZoneRecord {
  name: string;
  type: "A" | "AAAA" | "CNAME";
  ttl: number;
  data: string;
}

export interface Peer {
  port: number;
  address: string;
}

const TYPES = { A: TYPE_A, AAAA: TYPE_AAAA, CNAME: TYPE_CNAME } as const;

function nameBytes(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".").filter(Boolean)) {
    const b = new TextEncoder().encode(label);
    out.push(b.length, ...b);
  }
  out.push(0);
  return out;
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

/**
 * A reply to `query` carrying `records`. The question section is copied from the query unless
 * `question` replaces it; a record named exactly like the question points at it (so a name with
 * odd bytes in its labels comes back byte for byte).
 */
export function encodeReply(
  query: Uint8Array,
  records: ZoneRecord[],
  o: { rcode?: number; id?: number; question?: { name: string; type: number } } = {},
): Uint8Array {
  const asked = parseQuestion(query)!;
  const qEnd = 12 + questionLength(query);
  const qsection = o.question
    ? [...nameBytes(o.question.name), o.question.type >> 8, o.question.type & 255, 0, 1]
    : [...query.subarray(12, qEnd)];
  const id = o.id ?? asked.id;
  const flags = 0x8180 | (o.rcode ?? 0);
  const out = [
    id >> 8,
    id & 255,
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
    ...qsection,
  ];
  for (const r of records) {
    const type = TYPES[r.type];
    const rdata = r.type === "CNAME" ? nameBytes(r.data) : addrBytes(r.data);
    const owner = !o.question && r.name === asked.name ? [0xc0, 12] : nameBytes(r.name);
    out.push(
      ...owner,
      type >> 8,
      type & 255,
      0,
      1,
      (r.ttl >>> 24) & 255,
      (r.ttl >>> 16) & 255,
      (r.ttl >>> 8) & 255,
      r.ttl & 255,
      rdata.length >> 8,
      rdata.length & 255,
      ...rdata,
    );
  }
  return new Uint8Array(out);
}

function questionLength(query: Uint8Array): number {
  let off = 12;
  while (query[off] !== 0 && off < query.length) off += 1 + query[off]!;
  return off + 1 + 4 - 12;
}

export interface ZoneServer {
  port: number;
  /** Every question asked, in order. */
  questions: Question[];
  stop(): void;
}

/**
 * Listens on `hostname` (a random port unless given): `handle` answers each question by returning the reply
 * to send from the server's own socket (null: no reply), after anything it sent itself (`send`
 * sends from the server's socket too).
 */
export async function startZoneServer(
  hostname: string,
  handle: (
    q: Question,
    query: Uint8Array,
    peer: Peer,
    send: (bytes: Uint8Array) => void,
  ) => Uint8Array | null | Promise<Uint8Array | null>,
  port = 0,
): Promise<ZoneServer> {
  const questions: Question[] = [];
  const sock = await Bun.udpSocket({
    hostname,
    port,
    socket: {
      // A client gone before the reply (the test's forgeries outlive the exchange) is no error.
      error() {},
      async data(s, buf, port, address) {
        const query = new Uint8Array(buf);
        const q = parseQuestion(query);
        if (!q) return;
        questions.push(q);
        const reply = await handle(q, query, { port, address }, (b) => void s.send(b, port, address));
        if (reply) s.send(reply, port, address);
      },
    },
  });
  return { port: sock.port, questions, stop: () => sock.close() };
}

/** Sends `bytes` to `to` from a fresh socket on `fromHost` (another port, or another address). */
export async function sendFrom(fromHost: string, to: Peer, bytes: Uint8Array): Promise<void> {
  const s = await Bun.udpSocket({ hostname: fromHost, port: 0, socket: { error() {} } });
  s.send(bytes, to.port, to.address);
  await Bun.sleep(5);
  s.close();
}

/** A query for `name` as any stub resolver would send it (the id is the caller's). */
export { encodeQuery } from "../../../src/agent/dns.ts";
