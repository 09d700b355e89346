/**
 * @module agent/dns.test
 * The agent's resolver against a real DNS server on loopback (test/support/egress/zone-server):
 * forged replies from another address or port, or for another question, are ignored; query ids
 * are unpredictable; only the records along the CNAME chain of the name asked are taken.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import {
  encodeReply,
  sendFrom,
  startZoneServer,
  type ZoneRecord,
  type ZoneServer,
} from "../../test/support/egress/zone-server.ts";
import { silentLogger } from "../log/logger.ts";
import { encodeQuery, parseAnswer, resolveAll, TYPE_A, TYPE_AAAA, type Question } from "./dns.ts";
import { pinningResponderFactory } from "./dns-responder.ts";

const A = (name: string, data: string, ttl = 300): ZoneRecord => ({ name, type: "A", ttl, data });
const CNAME = (name: string, data: string, ttl = 300): ZoneRecord => ({ name, type: "CNAME", ttl, data });

let server: ZoneServer;
let zone: (
  q: Question,
  query: Uint8Array,
  peer: { port: number; address: string },
  send: (b: Uint8Array) => void,
) => Promise<Uint8Array | null> | Uint8Array | null;
const at = () => [`127.0.0.1#${server.port}`];

beforeAll(async () => {
  server = await startZoneServer("127.0.0.1", (q, query, peer, send) => zone(q, query, peer, send));
});
afterAll(() => server.stop());
afterEach(() => {
  server.questions.splice(0);
});

test("a forged reply from another address or another port is ignored; the server's own reply is taken", async () => {
  zone = async (q, query, peer) => {
    if (q.type !== TYPE_A) return encodeReply(query, []);
    const forged = encodeReply(query, [A(q.name, "10.66.6.6")]); // right id, right question
    await sendFrom("127.0.0.2", peer, forged); // another address
    await sendFrom("127.0.0.1", peer, forged); // the server's address, another port
    await Bun.sleep(100);
    return encodeReply(query, [A(q.name, "10.77.0.41")]);
  };
  expect((await resolveAll("spoofed.test", at())).addrs).toEqual(["10.77.0.41"]);
});

test("a reply from the server for another question (name or type) is ignored", async () => {
  zone = async (q, query, _peer, send) => {
    if (q.type !== TYPE_A) return encodeReply(query, []);
    send(encodeReply(query, [A("evil.test", "10.66.6.6")], { question: { name: "evil.test", type: TYPE_A } }));
    send(encodeReply(query, [A(q.name, "10.66.6.7")], { question: { name: q.name, type: TYPE_AAAA } }));
    await Bun.sleep(50);
    return encodeReply(query, [A(q.name, "10.77.0.42")]);
  };
  expect((await resolveAll("asked.test", at())).addrs).toEqual(["10.77.0.42"]);
});

test("query ids come from the system's CSPRNG, not Math.random", async () => {
  zone = (_q, query) => encodeReply(query, []);
  const random = Math.random;
  Math.random = () => 0.5;
  try {
    for (let i = 0; i < 8; i++) await resolveAll(`n${i}.test`, at());
  } finally {
    Math.random = random;
  }
  expect(new Set(server.questions.map((q) => q.id)).size).toBeGreaterThan(8);
});

test("an extra record for an unrelated name in the answer is not taken", async () => {
  zone = (q, query) =>
    q.type === TYPE_A
      ? encodeReply(query, [A(q.name, "10.77.0.21", 120), A("unrelated.test", "10.66.6.6", 5)])
      : encodeReply(query, []);
  expect(await resolveAll("allowed.test", at())).toEqual({ addrs: ["10.77.0.21"], ttl: 120 });
});

test("the CNAME chain of the name asked is followed (its target's addresses count, the smallest TTL along it); other records are not", async () => {
  zone = (q, query) =>
    q.type === TYPE_A
      ? encodeReply(query, [
          CNAME(q.name, "edge.cdn.test", 30),
          A("decoy.test", "10.66.6.6"),
          CNAME("edge.cdn.test", "node.cdn.test", 200),
          CNAME("other.test", "elsewhere.test"),
          A("node.cdn.test", "10.77.0.31", 100),
          A("node.cdn.test", "10.77.0.32", 100),
          A("elsewhere.test", "10.66.6.7"),
        ])
      : encodeReply(query, []);
  expect(await resolveAll("Cname.Test.", at())).toEqual({ addrs: ["10.77.0.31", "10.77.0.32"], ttl: 30 });
});

test("a CNAME loop yields no addresses instead of hanging", async () => {
  zone = (q, query) =>
    q.type === TYPE_A
      ? encodeReply(query, [CNAME(q.name, "b.test"), CNAME("b.test", q.name), A("b.test", "10.66.6.6")])
      : encodeReply(query, []);
  expect((await resolveAll("a.test", at())).addrs).toEqual([]);
});

test("the pinning responder forwards a question upstream under a fresh id and answers with the client's own id", async () => {
  zone = (q, query) => encodeReply(query, q.type === TYPE_A ? [A(q.name, "10.77.0.43")] : []);
  const probe = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const listenPort = probe.port;
  probe.close();
  const responder = await pinningResponderFactory({
    listen: [`127.0.0.1#${listenPort}`],
    upstream: at,
    pinned: () => null,
    learn: async () => false,
    log: silentLogger,
  });
  try {
    const got = Promise.withResolvers<Uint8Array>();
    const client = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      socket: { data: (_s, buf) => got.resolve(new Uint8Array(buf)) },
    });
    client.send(encodeQuery(0x1234, "fwd.test", TYPE_A), listenPort, "127.0.0.1");
    const reply = parseAnswer(await got.promise);
    client.close();
    expect(reply.id).toBe(0x1234);
    expect(reply.records.map((r) => r.data)).toEqual(["10.77.0.43"]);
    expect(server.questions.map((q) => q.id)).not.toContain(0x1234);
  } finally {
    responder.stop();
  }
});
