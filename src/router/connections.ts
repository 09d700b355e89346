/**
 * @module router/connections
 * Every proxied connection, registered under its build, with the build's counters. Owns the
 * router's metrics: totals as Prometheus counters, and per-build gauges computed at scrape from
 * this table — per-build series disappear `retentionMs` after the build ended and its last
 * connection closed, so a long-running appliance does not grow one series per build forever.
 */
import type { MetricsRegistry } from "../metrics/registry.ts";
import type { RefusalReason } from "./errors.ts";

export type Direction = "client_to_builder" | "builder_to_client";

export interface TrackedConnection {
  readonly id: number;
  readonly buildId: string;
  /** Closes both sides; idempotent. */
  close(why: string): void;
  lastActivity: number;
}

export interface BuildStats {
  buildId: string;
  projectId: string;
  platform: string;
  open: number;
  total: number;
  bytesClientToBuilder: number;
  bytesBuilderToClient: number;
  endedAt: number | null;
}

export interface RouterStats {
  open: number;
  total: number;
  bytesClientToBuilder: number;
  bytesBuilderToClient: number;
  refused: Partial<Record<RefusalReason, number>>;
  builds: BuildStats[];
}

export function connectionTableFactory({
  metrics,
  retentionMs,
  now = Date.now,
}: {
  metrics: MetricsRegistry;
  retentionMs: number;
  now?: () => number;
}) {
  const conns = new Map<string, Set<TrackedConnection>>();
  const builds = new Map<string, BuildStats>();
  const refused: Partial<Record<RefusalReason, number>> = {};
  let open = 0;
  let total = 0;
  const bytes: Record<Direction, number> = { client_to_builder: 0, builder_to_client: 0 };

  const totalConns = metrics.counter("slipway_router_connections_total", "Connections proxied to builders since start");
  const totalBytes = metrics.counter(
    "slipway_router_bytes_total",
    "Bytes proxied between clients and builders, by direction",
  );
  const refusedCounter = metrics.counter(
    "slipway_router_refused_total",
    "Connections refused by the build endpoint, by reason",
  );
  metrics.gauge("slipway_router_connections_open", "Connections currently proxied to builders", () => [
    { value: open },
  ]);
  const perBuild = (pick: (b: BuildStats) => { labels?: Record<string, string>; value: number }[]) => () =>
    [...builds.values()].flatMap(pick);
  metrics.gauge(
    "slipway_router_build_connections_open",
    "Connections currently proxied to a build's builder",
    perBuild((b) => [{ labels: { build_id: b.buildId, platform: b.platform }, value: b.open }]),
  );
  metrics.gauge(
    "slipway_router_build_connections",
    "Connections a build has opened through the build endpoint so far",
    perBuild((b) => [{ labels: { build_id: b.buildId, platform: b.platform }, value: b.total }]),
  );
  metrics.gauge(
    "slipway_router_build_bytes",
    "Bytes a build has moved through the build endpoint so far, by direction",
    perBuild((b) => [
      {
        labels: { build_id: b.buildId, platform: b.platform, direction: "client_to_builder" },
        value: b.bytesClientToBuilder,
      },
      {
        labels: { build_id: b.buildId, platform: b.platform, direction: "builder_to_client" },
        value: b.bytesBuilderToClient,
      },
    ]),
  );

  return {
    openCount(buildId: string): number {
      return conns.get(buildId)?.size ?? 0;
    },

    add(c: TrackedConnection, target: { projectId: string; platform: string }): BuildStats {
      let set = conns.get(c.buildId);
      if (!set) conns.set(c.buildId, (set = new Set()));
      set.add(c);
      let b = builds.get(c.buildId);
      if (!b) {
        b = {
          buildId: c.buildId,
          projectId: target.projectId,
          platform: target.platform,
          open: 0,
          total: 0,
          bytesClientToBuilder: 0,
          bytesBuilderToClient: 0,
          endedAt: null,
        };
        builds.set(c.buildId, b);
      }
      b.open++;
      b.total++;
      open++;
      total++;
      totalConns.inc();
      return b;
    },

    remove(c: TrackedConnection): void {
      const set = conns.get(c.buildId);
      if (!set?.delete(c)) return;
      if (set.size === 0) conns.delete(c.buildId);
      const b = builds.get(c.buildId);
      if (b) b.open--;
      open--;
    },

    countBytes(b: BuildStats, dir: Direction, n: number): void {
      if (dir === "client_to_builder") b.bytesClientToBuilder += n;
      else b.bytesBuilderToClient += n;
      bytes[dir] += n;
      totalBytes.inc({ direction: dir }, n);
    },

    refused(reason: RefusalReason): void {
      refused[reason] = (refused[reason] ?? 0) + 1;
      refusedCounter.inc({ reason });
    },

    /** Marks the build ended and returns its open connections (the caller closes them). */
    ended(buildId: string): TrackedConnection[] {
      const b = builds.get(buildId);
      if (b && b.endedAt === null) b.endedAt = now();
      return [...(conns.get(buildId) ?? [])];
    },

    all(): TrackedConnection[] {
      return [...conns.values()].flatMap((s) => [...s]);
    },

    /** Drops per-build stats of builds ended more than retentionMs ago with nothing open. */
    prune(): void {
      const t = now();
      for (const [id, b] of builds)
        if (b.endedAt !== null && b.open === 0 && t - b.endedAt > retentionMs) builds.delete(id);
    },

    stats(): RouterStats {
      return {
        open,
        total,
        bytesClientToBuilder: bytes.client_to_builder,
        bytesBuilderToClient: bytes.builder_to_client,
        refused: { ...refused },
        builds: [...builds.values()].map((b) => ({ ...b })),
      };
    },
  };
}

export type ConnectionTable = ReturnType<typeof connectionTableFactory>;
