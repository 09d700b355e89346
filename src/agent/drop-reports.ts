/**
 * @module agent/drop-reports
 * Monitor events: the drops (or, in monitor mode, would-be drops) NFLOG saw, attributed to the
 * agent's scope they belong to, deduplicated per (scope, source, destination) and flushed to
 * the appliance once a second, at most `maxPerFlush` at a time. A flush that fails keeps its
 * events, counted into the next one.
 */
import type { Logger } from "../log/logger.ts";
import type { EventReport } from "../wire/egress/policy.ts";
import { parseScope } from "../wire/egress/scopes.ts";
import { cidrContains, familyOf } from "../wire/egress/targets.ts";
import type { DropEvent } from "./sources.ts";

export interface DropReportsOptions {
  /** The scopes in force now. */
  scopes: () => string[];
  bridgeOf: (network: string) => string | null;
  /** The pinned name an address belongs to, if any (reported as the event's hostname). */
  nameOf: (addr: string) => string | null;
  report: (events: EventReport[]) => Promise<void>;
  log: Logger;
  maxPerFlush: number;
}

type EventKey = Pick<EventReport, "action" | "scope" | "source" | "dst" | "port" | "protocol">;
const keyOf = (e: EventKey) => `${e.action}|${e.scope}|${e.source}|${e.dst}|${e.port}|${e.protocol}`;

export function dropReportsFactory(o: DropReportsOptions) {
  const pending = new Map<string, EventReport>();

  /** The scope a drop belongs to; null when it is in none of this agent's (not reported). */
  function scopeOf(e: DropEvent): { scope: string; source: string } | null {
    const scopes = o.scopes();
    for (const raw of scopes) {
      const s = parseScope(raw);
      if (typeof s === "string") continue;
      if (e.indev) {
        if (
          s.kind === "bridge" &&
          (s.iface.endsWith("+") ? e.indev.startsWith(s.iface.slice(0, -1)) : e.indev === s.iface)
        )
          return { scope: raw, source: e.src };
        if (s.kind === "docker" && (s.network === "*" ? e.indev.startsWith("br-") : o.bridgeOf(s.network) === e.indev))
          return { scope: raw, source: e.src };
        if (s.kind === "subnet" && cidrContains(s.cidr, e.src)) return { scope: raw, source: e.src };
      } else if (s.kind === "uid" && e.uid === s.uid) return { scope: raw, source: `uid:${s.uid}` };
    }
    if (!scopes.includes("host")) return null;
    return { scope: "host", source: e.uid !== null ? `uid:${e.uid}` : e.src };
  }

  function onDrop(e: DropEvent): void {
    if (!familyOf(e.dst)) return;
    const of = scopeOf(e);
    if (!of) return;
    const { scope, source } = of;
    const action = e.monitor ? "would-block" : "blocked";
    const key = keyOf({ action, scope, source, dst: e.dst, port: e.port, protocol: e.protocol });
    const cur = pending.get(key);
    if (cur) cur.count++;
    else
      pending.set(key, {
        action,
        scope,
        source,
        dst: e.dst,
        port: e.port,
        protocol: e.protocol,
        hostname: o.nameOf(e.dst),
        count: 1,
        at: new Date().toISOString(),
      });
  }

  const flusher = setInterval(async () => {
    if (pending.size === 0) return;
    const batch: EventReport[] = [];
    for (const [k, ev] of pending) {
      if (batch.length >= o.maxPerFlush) break;
      batch.push(ev);
      pending.delete(k);
    }
    await o.report(batch).catch((e) => {
      o.log.warn("egress: could not report events; keeping them for the next try", { error: String(e) });
      for (const ev of batch) {
        const k = keyOf(ev);
        const cur = pending.get(k);
        if (cur) cur.count += ev.count;
        else pending.set(k, ev);
      }
    });
  }, 1000);

  return {
    onDrop,
    stop(): void {
      clearInterval(flusher);
    },
  };
}
