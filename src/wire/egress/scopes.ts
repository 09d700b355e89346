/**
 * @module wire/egress/scopes
 * Where a policy applies on a runner host:
 * - `host`: every process of the host (a dedicated runner VM or machine), from OUTPUT;
 * - `uid:N`: the processes of one Linux user on a shared host (`-m owner --uid-owner N`);
 * - `docker:NAME`: the containers of one Docker network (its bridge, looked up in Docker);
 *   `docker:*` is every user-defined Docker network, present and future (bridges `br-+`);
 * - `bridge:IFACE`: containers behind a bridge interface (iptables pattern, `+` allowed);
 * - `subnet:CIDR`: containers by source subnet.
 * Container scopes are filtered in DOCKER-USER (the FORWARD path).
 * Part of the egress wire contract: the server validates registered scopes, the agent applies them.
 */
import { parseTarget } from "./targets.ts";

export type Scope =
  | { kind: "host" }
  | { kind: "uid"; uid: number }
  | { kind: "docker"; network: string }
  | { kind: "bridge"; iface: string }
  | { kind: "subnet"; cidr: string; family: 4 | 6 };

export function parseScope(raw: string): Scope | string {
  const s = raw.trim();
  if (s === "host") return { kind: "host" };
  const [kind, ...rest] = s.split(":");
  const arg = rest.join(":");
  switch (kind) {
    case "uid":
      return /^\d{1,10}$/.test(arg) && Number(arg) < 2 ** 32
        ? { kind: "uid", uid: Number(arg) }
        : `'${raw}': uid must be a number`;
    case "docker":
      return arg === "*" || /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(arg)
        ? { kind: "docker", network: arg }
        : `'${raw}': not a Docker network name`;
    case "bridge":
      return /^[A-Za-z0-9_.-]{1,14}\+?$/.test(arg)
        ? { kind: "bridge", iface: arg }
        : `'${raw}': not an interface name (15 characters, a trailing + matches a prefix)`;
    case "subnet": {
      const t = parseTarget(arg);
      return typeof t !== "string" && t.kind === "cidr"
        ? { kind: "subnet", cidr: t.cidr, family: t.family }
        : `'${raw}': not a CIDR`;
    }
    default:
      return `'${raw}': a scope is host, uid:N, docker:NETWORK, docker:*, bridge:IFACE or subnet:CIDR`;
  }
}

export function scopeText(s: Scope): string {
  switch (s.kind) {
    case "host":
      return "host";
    case "uid":
      return `uid:${s.uid}`;
    case "docker":
      return `docker:${s.network}`;
    case "bridge":
      return `bridge:${s.iface}`;
    case "subnet":
      return `subnet:${s.cidr}`;
  }
}
