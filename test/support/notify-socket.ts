/**
 * @module test/support/notify-socket
 * What systemd does with NOTIFY_SOCKET, for tests: an AF_UNIX datagram socket bound to a path
 * (or an abstract name), receiving sd_notify messages. Bun has no AF_UNIX datagram socket, so it
 * is libc through bun:ffi, non-blocking and polled.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { notifySocketAddress } from "../../src/systemd/notify.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
});

export interface NotifyListener {
  /** What NOTIFY_SOCKET should say. */
  address: string;
  /** Every message received so far, in order, with when it arrived. */
  messages: { text: string; at: number }[];
  /** Resolves with the first message (received from now on or already) that matches. */
  waitFor(match: (text: string) => boolean, timeoutMs?: number): Promise<{ text: string; at: number }>;
  close(): void;
}

export function listenForNotifications(address: string): NotifyListener {
  const fd = libc.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error("socket(AF_UNIX, SOCK_DGRAM) failed");
  const { addr, length } = notifySocketAddress(address);
  if (libc.symbols.bind(fd, ptr(addr), length) !== 0) {
    libc.symbols.close(fd);
    throw new Error(`bind ${address} failed`);
  }
  const messages: { text: string; at: number }[] = [];
  const buf = new Uint8Array(4096);
  const drain = () => {
    for (;;) {
      const n = Number(libc.symbols.recv(fd, ptr(buf), buf.length, 0));
      if (n <= 0) return;
      messages.push({ text: Buffer.from(buf.subarray(0, n)).toString("utf8"), at: Date.now() });
    }
  };
  const timer = setInterval(drain, 10);
  let closed = false;
  return {
    address,
    messages,
    async waitFor(match, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        drain();
        const found = messages.find((m) => match(m.text));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching sd_notify message; got ${JSON.stringify(messages)}`);
        await Bun.sleep(10);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      libc.symbols.close(fd);
    },
  };
}
