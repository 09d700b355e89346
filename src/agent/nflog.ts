/**
 * @module agent/nflog
 * Reads NFLOG messages (the would-be drops of monitor mode, and the drops of enforce mode) from
 * an AF_NETLINK / NETLINK_NETFILTER socket opened through bun:ffi — no native addon (the npm
 * `netlink` addon panics under Bun: `uv_poll_init` is unsupported). The socket is non-blocking and
 * drained every `pollMs`, so the event loop never blocks. Opened in the network namespace of the
 * calling process.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readdirSync, readFileSync } from "node:fs";
import type { DropEvent, DropSource } from "./sources.ts";
import { parseTarget } from "../wire/egress/targets.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_NETFILTER = 12;
const MSG_DONTWAIT = 0x40;
const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULNL_CFG_CMD_BIND = 1;
const NFULNL_CFG_CMD_UNBIND = 2;
const NFULNL_COPY_PACKET = 2;
const NFULA_IFINDEX_INDEV = 4;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const NFULA_UID = 11;

let libc: ReturnType<typeof open> | null = null;
function open() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

function attr(type: number, payload: number[]): number[] {
  const len = 4 + payload.length;
  const out = [len & 255, len >> 8, type & 255, type >> 8, ...payload];
  while (out.length % 4) out.push(0);
  return out;
}

function configMessage(seq: number, group: number, attrs: number[]): Uint8Array {
  const body = [0 /* AF_UNSPEC */, 0 /* version */, group >> 8, group & 255, ...attrs];
  const len = 16 + body.length;
  const type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  const flags = NLM_F_REQUEST | NLM_F_ACK;
  const hdr = new Uint8Array(16);
  const v = new DataView(hdr.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, seq, true);
  v.setUint32(12, 0, true);
  return new Uint8Array([...hdr, ...body]);
}

function ifName(index: number, cache: Map<number, string>): string | null {
  if (!cache.has(index)) {
    cache.clear();
    for (const n of readdirSync("/sys/class/net")) {
      try {
        cache.set(Number(readFileSync(`/sys/class/net/${n}/ifindex`, "utf8")), n);
      } catch {}
    }
  }
  return cache.get(index) ?? null;
}

function v6(b: Uint8Array, off: number): string {
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(((b[off + i]! << 8) | b[off + i + 1]!).toString(16));
  const t = parseTarget(w.join(":"));
  return typeof t === "string" || t.kind !== "cidr" ? w.join(":") : t.cidr.replace(/\/128$/, "");
}

/** Parses one NFULNL_MSG_PACKET's attributes into a DropEvent. */
export function parsePacketMessage(msg: Uint8Array, family: number, ifaces: Map<number, string>): DropEvent | null {
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  let off = 20; // nlmsghdr (16) + nfgenmsg (4)
  let uid: number | null = null;
  let indev: string | null = null;
  let payload: Uint8Array | null = null;
  let prefix = "";
  while (off + 4 <= msg.length) {
    const len = v.getUint16(off, true);
    const type = v.getUint16(off + 2, true) & 0x3fff;
    if (len < 4) break;
    const data = msg.subarray(off + 4, off + len);
    if (type === NFULA_UID && data.length >= 4) uid = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, false);
    else if (type === NFULA_IFINDEX_INDEV && data.length >= 4)
      indev = ifName(new DataView(data.buffer, data.byteOffset, 4).getUint32(0, false), ifaces);
    else if (type === NFULA_PAYLOAD) payload = data;
    else if (type === NFULA_PREFIX) prefix = new TextDecoder().decode(data).replace(/\0.*$/s, "");
    off += (len + 3) & ~3;
  }
  if (!payload || payload.length < 20) return null;
  let proto: number, src: string, dst: string, l4: number;
  if (payload[0]! >> 4 === 4 && family !== 10) {
    proto = payload[9]!;
    src = [...payload.subarray(12, 16)].join(".");
    dst = [...payload.subarray(16, 20)].join(".");
    l4 = (payload[0]! & 15) * 4;
  } else if (payload[0]! >> 4 === 6 && payload.length >= 40) {
    proto = payload[6]!;
    src = v6(payload, 8);
    dst = v6(payload, 24);
    l4 = 40;
  } else return null;
  const port =
    (proto === 6 || proto === 17) && payload.length >= l4 + 4 ? (payload[l4 + 2]! << 8) | payload[l4 + 3]! : 0;
  return {
    src,
    dst,
    port,
    protocol: proto === 6 ? "tcp" : proto === 17 ? "udp" : proto === 1 || proto === 58 ? "icmp" : String(proto),
    uid,
    indev,
    monitor: prefix === "slw-monitor",
  };
}

/** An NFLOG reader for `group`; start() binds (fails when another process holds the group). */
export function nflogSource(group: number, pollMs = 50): DropSource {
  let fd = -1;
  let timer: Timer | null = null;
  return {
    async start(onEvent) {
      libc ??= open();
      const c = libc.symbols;
      fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
      if (fd < 0) throw new Error("cannot open an AF_NETLINK/NETLINK_NETFILTER socket (needs CAP_NET_ADMIN)");
      const sa = new Uint8Array(12);
      new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
      if (c.bind(fd, ptr(sa), 12) !== 0) throw new Error("cannot bind the netlink socket");
      const buf = new Uint8Array(65536);
      const sendCfg = (seq: number, attrs: number[]) => {
        const m = configMessage(seq, group, attrs);
        c.send(fd, ptr(m), m.length, 0);
        // Read the ACK (or error) synchronously: the kernel answers at once.
        for (let i = 0; i < 50; i++) {
          const n = Number(c.recv(fd, ptr(buf), buf.length, MSG_DONTWAIT));
          if (n > 0) {
            const v = new DataView(buf.buffer);
            if (v.getUint16(4, true) === 2 /* NLMSG_ERROR */) return v.getInt32(16, true);
            return 0;
          }
          Bun.sleepSync(1);
        }
        return 0;
      };
      sendCfg(1, attr(NFULA_CFG_CMD, [NFULNL_CFG_CMD_UNBIND]));
      const err = sendCfg(2, attr(NFULA_CFG_CMD, [NFULNL_CFG_CMD_BIND]));
      if (err !== 0)
        throw new Error(`cannot bind NFLOG group ${group} (error ${-err}); is another reader bound to it?`);
      sendCfg(3, attr(NFULA_CFG_MODE, [0, 0, 0, 128, NFULNL_COPY_PACKET, 0]));
      const ifaces = new Map<number, string>();
      timer = setInterval(() => {
        for (;;) {
          const n = Number(c.recv(fd, ptr(buf), buf.length, MSG_DONTWAIT));
          if (n <= 0) return;
          const v = new DataView(buf.buffer, 0, n);
          let off = 0;
          while (off + 16 <= n) {
            const len = v.getUint32(off, true);
            const type = v.getUint16(off + 4, true);
            if (len < 16 || off + len > n) break;
            if (type === ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) {
              const e = parsePacketMessage(buf.slice(off, off + len), buf[off + 16]!, ifaces);
              if (e) onEvent(e);
            }
            off += (len + 3) & ~3;
          }
        }
      }, pollMs);
    },
    stop() {
      if (timer) clearInterval(timer);
      if (fd >= 0 && libc) libc.symbols.close(fd);
      fd = -1;
    },
  };
}
