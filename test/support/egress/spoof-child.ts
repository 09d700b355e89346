/**
 * @module test/support/egress/spoof-child
 * Run inside a network namespace of a test (`ip netns exec NS bun spoof-child.ts ROLE …`):
 * - `server ADDR FORGER_ADDR`: a DNS server on ADDR:53 that, for every A question, first sends
 *   a forged reply (right id, right question, address 10.66.6.6) from FORGER_ADDR and from
 *   another port of ADDR, then after 100 ms its own reply (10.77.0.41);
 * - `resolve NAME SERVER`: the agent's resolver, printing what it resolved as JSON.
 */
import { resolveAll, TYPE_A } from "../../../src/agent/dns.ts";
import { encodeReply, sendFrom, startZoneServer } from "./zone-server.ts";

const [role, a, b] = process.argv.slice(2) as [string, string, string];
if (role === "server") {
  await startZoneServer(
    a,
    async (q, query, peer) => {
      if (q.type !== TYPE_A) return encodeReply(query, []);
      const forged = encodeReply(query, [{ name: q.name, type: "A", ttl: 60, data: "10.66.6.6" }]);
      await sendFrom(b, peer, forged);
      await sendFrom(a, peer, forged);
      await Bun.sleep(100);
      return encodeReply(query, [{ name: q.name, type: "A", ttl: 60, data: "10.77.0.41" }]);
    },
    53,
  );
  console.log("ready");
  await new Promise(() => {});
} else {
  console.log(JSON.stringify(await resolveAll(a, [b])));
}
