/**
 * @module config/listen
 * Listen addresses: `host:port`, `[v6]:port`, `:port` (all interfaces) or a bare port.
 */

export interface ListenAddress {
  hostname: string;
  port: number;
}

export function parseListenAddress(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  const hostname = m[1] || m[2] || "0.0.0.0";
  return { hostname, port };
}

export function formatListenAddress(a: ListenAddress): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/** True when the address only accepts connections from this machine. */
export function isLoopbackAddress(ip: string): boolean {
  const v = ip.startsWith("::ffff:") ? ip.slice(7) : ip;
  return v === "::1" || v.startsWith("127.") || v === "localhost";
}
