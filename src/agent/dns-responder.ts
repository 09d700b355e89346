/**
 * @module agent/dns-responder
 * The pinning DNS responder for container scopes. Containers do not read the host's
 * /etc/hosts, so runner containers are pointed at this responder (`--dns <bridge address>`):
 * a pinned name is answered with exactly the addresses in the sets; a name a wildcard rule
 * covers is learned (resolved and put into the sets) before it is answered, when it is a host
 * name and within the agent's cap (./learned-names.ts); any other question is forwarded to the
 * host's resolvers under a fresh id (such an address is then subject to the default rule). A container using its own resolver gets that resolver's answers: with default deny,
 * only addresses that are also in the allow sets (current or within the grace period) work.
 */
import type { Logger } from "../log/logger.ts";
import { encodeAnswer, exchange, parseQuestion, TYPE_A, TYPE_AAAA } from "./dns.ts";
import { isIP } from "node:net";

export interface ResponderOptions {
  listen: string[];
  upstream: () => string[];
  pinned(name: string): { addrs: string[]; ttl: number } | null;
  learn(name: string): Promise<boolean>;
  log: Logger;
}

export type PinningResponder = Awaited<ReturnType<typeof pinningResponderFactory>>;

export async function pinningResponderFactory(o: ResponderOptions) {
  const sockets: { close(): void }[] = [];
  for (const l of o.listen) {
    const [host, port] = l.includes("#") ? [l.split("#")[0]!, Number(l.split("#")[1])] : [l, 53];
    const sock = await Bun.udpSocket({
      hostname: host,
      port,
      socket: {
        async data(s, buf, rport, raddr) {
          const q = parseQuestion(new Uint8Array(buf));
          if (!q) return;
          try {
            if (q.type === TYPE_A || q.type === TYPE_AAAA) {
              let p = o.pinned(q.name);
              if (!p && (await o.learn(q.name))) p = o.pinned(q.name);
              if (p) return void s.send(encodeAnswer(q, p.addrs, p.ttl), rport, raddr);
            }
            for (const up of o.upstream()) {
              try {
                return void s.send(await exchange(up, new Uint8Array(buf), 2000), rport, raddr);
              } catch {}
            }
            s.send(encodeAnswer(q, [], 0, 2), rport, raddr); // SERVFAIL
          } catch (e) {
            o.log.warn("egress: DNS responder failed", { error: String(e) });
          }
        },
      },
    });
    sockets.push(sock);
    o.log.info("egress: pinning DNS responder listening", {
      address: isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`,
    });
  }
  return {
    stop() {
      for (const s of sockets) s.close();
    },
  };
}
