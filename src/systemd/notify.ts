/**
 * @module systemd/notify
 * The sd_notify(3) protocol without libsystemd: readiness (READY=1), the watchdog (WATCHDOG=1),
 * stopping (STOPPING=1), status lines and stop-timeout extensions, sent as one datagram each to
 * the AF_UNIX socket named by NOTIFY_SOCKET. Bun has no AF_UNIX datagram socket (node:dgram is
 * UDP only, node:net is stream only) and a native addon would tie the binary to one libc build,
 * hence socket(2)/sendto(2) from libc through bun:ffi, as appliance/lock does for flock(2).
 * Without NOTIFY_SOCKET (not under systemd, or Type=simple) every call is a no-op.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): sa_family_t (2) + sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = 108;

type Libc = {
  symbols: {
    socket(domain: number, type: number, protocol: number): number;
    sendto(fd: number, buf: unknown, len: number, flags: number, addr: unknown, addrlen: number): number | bigint;
    close(fd: number): number;
  };
};
let libc: Libc | null = null;
function c(): Libc {
  libc ??= dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: {
      args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i64,
    },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  }) as unknown as Libc;
  return libc;
}

/** A state message: `KEY=VALUE` lines. A value cannot span lines (a newline would start a new key). */
export function encodeNotifyMessage(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => {
      if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`not an sd_notify key: ${k}`);
      return `${k}=${String(v).replace(/[\r\n]+/g, " ")}`;
    })
    .join("\n");
}

/**
 * NOTIFY_SOCKET as a struct sockaddr_un and its length. A leading '@' names an abstract socket:
 * its first byte is NUL and the length counts only the name's bytes, no terminator.
 */
export function notifySocketAddress(socketPath: string): { addr: Uint8Array; length: number } {
  if (!socketPath.startsWith("/") && !socketPath.startsWith("@"))
    throw new Error(`NOTIFY_SOCKET must be an absolute path or an abstract name (@…), not '${socketPath}'`);
  const name = new TextEncoder().encode(socketPath);
  if (name.length > SUN_PATH_MAX - (socketPath.startsWith("@") ? 0 : 1))
    throw new Error(`NOTIFY_SOCKET is longer than a socket address holds (${SUN_PATH_MAX} bytes)`);
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  addr[0] = AF_UNIX & 0xff; // sa_family_t, little-endian (every target this binary is built for)
  addr[1] = AF_UNIX >> 8;
  addr.set(name, 2);
  if (socketPath.startsWith("@")) {
    addr[2] = 0;
    return { addr, length: 2 + name.length };
  }
  return { addr, length: 2 + name.length + 1 };
}

export interface SystemdNotifier {
  /** True when NOTIFY_SOCKET is set: systemd (or a test) listens. */
  readonly enabled: boolean;
  /** Sends one state message; false when disabled or the send failed (never throws). */
  notify(fields: Record<string, string | number>): boolean;
  close(): void;
}

const disabled: SystemdNotifier = { enabled: false, notify: () => false, close() {} };

/** The notifier for this process's environment (no-op without NOTIFY_SOCKET, or with one it cannot use). */
export function systemdNotifier(env: Record<string, string | undefined>): SystemdNotifier {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return disabled;
  let address: { addr: Uint8Array; length: number };
  try {
    address = notifySocketAddress(socketPath);
  } catch {
    // As sd_notify(3) fails on an address it cannot use (e.g. systemd's vsock: form for VMs):
    // the service still runs; the manager just hears nothing.
    return disabled;
  }
  const { addr, length } = address;
  let fd = -1;
  return {
    enabled: true,
    notify(fields) {
      if (fd < 0) fd = c().symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return false;
      const msg = Buffer.from(encodeNotifyMessage(fields));
      // MSG_NOSIGNAL: a vanished receiver must not kill the process with SIGPIPE.
      return Number(c().symbols.sendto(fd, ptr(msg), msg.length, MSG_NOSIGNAL, ptr(addr), length)) === msg.length;
    },
    close() {
      if (fd >= 0) c().symbols.close(fd);
      fd = -1;
    },
  };
}

/**
 * How often to ping the watchdog, in ms: half of WATCHDOG_USEC (as sd_watchdog_enabled(3)
 * advises), or null when no watchdog is armed for this process (unset, or WATCHDOG_PID names
 * another process, e.g. a parent that exec'd us without clearing it).
 */
export function watchdogIntervalMs(env: Record<string, string | undefined>, pid = process.pid): number | null {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^\d+$/.test(usec) || Number(usec) === 0) return null;
  if (env.WATCHDOG_PID && env.WATCHDOG_PID !== String(pid)) return null;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

export interface WatchdogOptions {
  notifier: SystemdNotifier;
  intervalMs: number;
  /** Proves the process still works (e.g. a database query); a throw or rejection skips the ping. */
  probe: () => unknown;
  onProbeFailed?: (error: unknown) => void;
}

/**
 * Pings WATCHDOG=1 every interval while `probe` succeeds. The timer itself proves the event loop
 * turns; the probe proves what the service needs. A hung process stops pinging and systemd
 * restarts it (WatchdogSec + Restart=on-failure).
 */
export function startWatchdog(o: WatchdogOptions): { stop(): void } {
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return; // a probe slower than the interval is itself a missed ping
    busy = true;
    try {
      await o.probe();
      o.notifier.notify({ WATCHDOG: 1 });
    } catch (e) {
      o.onProbeFailed?.(e);
    } finally {
      busy = false;
    }
  }, o.intervalMs);
  timer.unref?.();
  return { stop: () => clearInterval(timer) };
}
