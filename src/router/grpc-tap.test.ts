import { afterEach, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import net from "node:net";
import { grpcResponseTap } from "./grpc-tap.ts";

const frame = (payload: Uint8Array) => {
  const b = Buffer.alloc(5 + payload.length);
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, 5);
  return b;
};
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((f) => f()));

describe("grpc response tap", () => {
  test("hands out the response messages of watched methods only, whole, and changes no byte", async () => {
    // A gRPC-shaped h2c server: /watched streams three messages (one split across writes), /other one.
    const server = http2.createServer();
    // It answers once it has read the whole request, so every request byte crosses the proxy
    // (answering first lets the client's stream end with part of its body unsent).
    server.on("stream", (stream: http2.ServerHttp2Stream, headers) => {
      stream.resume();
      stream.on("end", () => answer(stream, headers));
    });
    const answer = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      if (headers[":path"] === "/pkg.S/Watched") {
        stream.write(frame(new TextEncoder().encode("first")));
        const big = frame(new Uint8Array(40_000).fill(7));
        stream.write(big.subarray(0, 10_000));
        setTimeout(() => {
          stream.write(big.subarray(10_000));
          stream.end(frame(new TextEncoder().encode("last")));
        }, 20);
      } else stream.end(frame(new TextEncoder().encode("not-watched")));
    };
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => server.close());
    const seen: { path: string; size: number; text: string }[] = [];
    const tap = grpcResponseTap(new Set(["/pkg.S/Watched"]), (path, m) =>
      seen.push({ path, size: m.length, text: m.length < 100 ? new TextDecoder().decode(m) : "" }),
    );
    // A proxy that pipes bytes and shows both directions to the tap, as the router does.
    let upBytes = 0;
    let downBytes = 0;
    const proxy = net.createServer((client) => {
      const up = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
      client.on("data", (c: Buffer) => (tap.fromClient(c), (upBytes += c.length), up.write(c)));
      up.on("data", (c: Buffer) => (tap.fromServer(c), (downBytes += c.length), client.write(c)));
      client.on("close", () => up.destroy());
      up.on("close", () => client.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    cleanups.push(
      () => proxy.close(),
      () => tap.close(),
    );
    const session = http2.connect(`http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`);
    cleanups.push(() => session.destroy());
    const call = (path: string) =>
      new Promise<number>((resolve) => {
        const req = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          "x-pad": "p".repeat(500),
        });
        let n = 0;
        req.on("data", (d: Buffer) => (n += d.length));
        req.on("end", () => resolve(n));
        req.end(frame(new Uint8Array(100_000))); // a large request body: skipped, never buffered
      });
    const [watched, other] = await Promise.all([call("/pkg.S/Watched"), call("/pkg.S/Other")]);
    expect(watched).toBe(5 + 5 + 5 + 40_000 + 5 + 4); // the client got every byte
    expect(other).toBe(5 + 11);
    expect(seen).toEqual([
      { path: "/pkg.S/Watched", size: 5, text: "first" },
      { path: "/pkg.S/Watched", size: 40_000, text: "" },
      { path: "/pkg.S/Watched", size: 4, text: "last" },
    ]);
    expect(upBytes).toBeGreaterThan(100_000); // request bodies crossed the tap (and were skipped)
    expect(downBytes).toBeGreaterThan(40_000);
  });
});
