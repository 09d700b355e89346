/**
 * @module test/support/egress/dns-server
 * An authoritative-looking DNS server for egress tests, run in the DNS namespace. Its zone comes
 * as JSON lines on stdin: {"names": {"rr.test": ["10.77.0.21", ...]}, "ttl": 1}. Each answer
 * lists all of a name's addresses, rotated by one per question (round robin).
 */
import { encodeAnswer, parseQuestion } from "../../../src/agent/dns.ts";

let zone: Record<string, string[]> = {};
let ttl = 1;
let turn = 0;
await Bun.udpSocket({
  hostname: "::",
  port: 53,
  socket: {
    data(s, buf, port, addr) {
      const q = parseQuestion(new Uint8Array(buf));
      if (!q) return;
      const addrs = zone[q.name];
      if (!addrs) return void s.send(encodeAnswer(q, [], 0, 3), port, addr);
      const k = turn++ % addrs.length;
      s.send(encodeAnswer(q, [...addrs.slice(k), ...addrs.slice(0, k)], ttl), port, addr);
    },
  },
});
console.log("ready");
const decoder = new TextDecoder();
let rest = "";
for await (const chunk of Bun.stdin.stream()) {
  rest += decoder.decode(chunk);
  let i: number;
  while ((i = rest.indexOf("\n")) >= 0) {
    const line = rest.slice(0, i);
    rest = rest.slice(i + 1);
    const cfg = JSON.parse(line) as { names: Record<string, string[]>; ttl: number };
    zone = cfg.names;
    ttl = cfg.ttl;
    console.log("ok");
  }
}
