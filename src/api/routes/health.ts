/**
 * @module api/routes/health
 * Liveness, readiness and metrics. /livez says the process answers; /readyz runs every
 * registered check; /metrics is Prometheus text for loopback callers or the configured token.
 */
import { Elysia } from "elysia";
import { timingSafeEqual } from "node:crypto";
import { isLoopbackAddress } from "../../config/listen.ts";
import { ForbiddenError } from "../../errors.ts";
import type { HealthRegistry } from "../../health/registry.ts";
import type { MetricsRegistry } from "../../metrics/registry.ts";

const HEALTH_TYPE = "application/health+json";

export interface HealthRoutesOptions {
  /** When set, /metrics also answers non-loopback callers presenting this bearer token. */
  metricsBearerToken: string | null;
}

/** What these routes read: a slice of the app's own dependencies (api/app passes them on). */
export interface HealthRoutesDeps {
  health: HealthRegistry;
  metrics: MetricsRegistry;
  version: string;
  options: HealthRoutesOptions;
  /** The peer's IP address for a request. */
  clientAddress: (request: Request) => string | null;
}

export function healthRoutes({ health, metrics, version, options, clientAddress }: HealthRoutesDeps) {
  const expected = options.metricsBearerToken ? Buffer.from(`Bearer ${options.metricsBearerToken}`) : null;
  const tokenMatches = (header: string | null) => {
    if (!expected || !header) return false;
    const got = Buffer.from(header);
    return got.length === expected.length && timingSafeEqual(got, expected);
  };

  return new Elysia({ name: "routes/health" })
    .get(
      "/livez",
      ({ set }) => {
        set.headers["content-type"] = HEALTH_TYPE;
        set.headers["cache-control"] = "no-store";
        return JSON.stringify({ status: "pass", version });
      },
      { detail: { tags: ["health"], summary: "Liveness: the process is up and answering" } },
    )
    .get(
      "/readyz",
      async ({ set }) => {
        const report = await health.report(version);
        set.status = report.status === "fail" ? 503 : 200;
        set.headers["content-type"] = HEALTH_TYPE;
        set.headers["cache-control"] = "no-store";
        return JSON.stringify(report);
      },
      {
        detail: {
          tags: ["health"],
          summary: "Readiness: every registered check (application/health+json); 503 when one fails",
        },
      },
    )
    .get(
      "/metrics",
      ({ request, set }) => {
        const peer = clientAddress(request);
        if (!(peer && isLoopbackAddress(peer)) && !tokenMatches(request.headers.get("authorization"))) {
          throw new ForbiddenError(
            "metrics are served to loopback callers, or to others with the configured metrics bearer token",
          );
        }
        set.headers["content-type"] = "text/plain; version=0.0.4; charset=utf-8";
        return metrics.render();
      },
      { detail: { tags: ["health"], summary: "Prometheus metrics (loopback, or with metrics.bearer_token_file)" } },
    );
}
