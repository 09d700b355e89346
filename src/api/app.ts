/**
 * @module api/app
 * The HTTP application, built by a factory from its dependencies so tests can hand it real or
 * narrow fake ones. Cross-cutting behaviour lives here: request ids, body limits, HSTS, access
 * logs, metrics, and the single mapping of errors to problem+json. It is also the one place
 * that mounts routes: every REST route module (api/routes/*) and the Connect RPC service;
 * start-up wiring only hands over the services they call.
 */
import { Elysia, type AnyElysia } from "elysia";
import type { AuthService } from "../auth/index.ts";
import { RateLimitedError } from "../auth/rate-limit.ts";
import type { HealthRegistry } from "../health/registry.ts";
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import { checkDeclaredLength, readBodyLimited, readJsonLimited } from "../http/body.ts";
import { beginRequest, requestInfo } from "./context.ts";
import { PROBLEM_CONTENT_TYPE, toProblem } from "./problem.ts";
import { docsRoutes } from "./routes/docs.ts";
import { healthRoutes, type HealthRoutesOptions } from "./routes/health.ts";
import { buildRoutes, type BuildRoutesDeps } from "./routes/builds.ts";
import { registryRoutes, type RegistryRoutesDeps } from "./routes/registry.ts";
import { identityContext, type IdentityServices } from "./identity.ts";
import { meRoutes } from "./routes/me.ts";
import { authRoutes } from "./routes/auth.ts";
import { deviceRoutes } from "./routes/device.ts";
import { memberRoutes, orgRoutes } from "./routes/orgs.ts";
import { projectRoutes } from "./routes/projects.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { trustRoutes } from "./routes/trust.ts";
import { egressAgentRoutes, egressHostRoutes, egressRoutes } from "./routes/egress.ts";
import { webRoutes } from "./routes/web.ts";
import { adminRoutes, type AdminRoutesDeps } from "./routes/admin.ts";

export interface AppOptions extends HealthRoutesOptions {
  maxBodyBytes: number;
  /** Sent as Strict-Transport-Security when serving HTTPS; null over plain HTTP. */
  hstsMaxAgeSeconds: number | null;
}

export interface AppDeps {
  log: Logger;
  health: HealthRegistry;
  metrics: MetricsRegistry;
  auth: Pick<AuthService, "authenticate">;
  version: string;
  options: AppOptions;
  /** The peer's IP address for a request (the server knows it; tests may fake it). */
  clientAddress: (request: Request) => string | null;
  /** Organizations, projects, tokens and audit; without them only /api/v1/me is served. */
  identity?: IdentityServices;
  /** Builds over REST, and a project's builders and cache; without them those routes are not
   * served. Needs `identity`. */
  builds?: Omit<BuildRoutesDeps, "ctx">;
  /** The registry's REST face (saved images, retention, collection). Needs `identity`. */
  registry?: RegistryRoutesDeps["registry"];
  /** The administrator's views of builders, builder images and the CA. Needs `identity`. */
  admin?: Omit<AdminRoutesDeps, "ctx">;
  /** The Connect RPC service (the depot-compatible build API, api/connect), mounted as built. */
  rpc?: AnyElysia;
  /** Further route modules (tests), mounted last under the same hooks. */
  plugins?: AnyElysia[];
}

const CONNECT_UNREAD = Object.freeze({});

export function createApp(deps: AppDeps) {
  const { log, metrics, options } = deps;
  const requests = metrics.counter("slipway_http_requests_total", "HTTP requests by route, method and status");
  const durations = metrics.histogram(
    "slipway_http_request_duration_seconds",
    "HTTP request latency by route",
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  );
  const hsts = options.hstsMaxAgeSeconds === null ? null : `max-age=${options.hstsMaxAgeSeconds}`;

  // normalize: false makes unknown body fields a 400 instead of silently dropping them, so a
  // typo such as "builder_cpu" is reported rather than ignored.
  const app = new Elysia({ name: "slipway", normalize: false })
    .onRequest(({ request, set }) => {
      const info = beginRequest(request);
      set.headers["x-request-id"] = info.id;
      set.headers["x-content-type-options"] = "nosniff"; // a build log or problem is never sniffed into HTML
      if (hsts) set.headers["strict-transport-security"] = hsts;
      // Connect RPC bodies (build status batches) have their own, larger per-message limit.
      if (!info.rpc) checkDeclaredLength(request, options.maxBodyBytes);
    })
    .onParse(async ({ request, contentType }) => {
      // Connect RPC reads its own body (proto or JSON, unary or streamed): leave it unread.
      if (requestInfo(request).rpc) return CONNECT_UNREAD;
      if (contentType === "application/json" || contentType.endsWith("+json"))
        return readJsonLimited(request, options.maxBodyBytes);
      // Any other body (the API takes only JSON) is read within the same limit too: left to the
      // framework's own parsers, it was read whole, however large, before the 400.
      if (request.body) {
        const text = new TextDecoder().decode(await readBodyLimited(request, options.maxBodyBytes));
        return contentType.startsWith("application/x-www-form-urlencoded")
          ? Object.fromEntries(new URLSearchParams(text))
          : text;
      }
    })
    .onError(({ code, error, request, set, path }) => {
      const info = requestInfo(request);
      const { problem, unexpected } = toProblem(error, code);
      problem.instance = path;
      problem.request_id = info.id;
      if (unexpected) {
        log.error("request failed", {
          request_id: info.id,
          method: request.method,
          path,
          error: error as Error,
          stack: (error as Error)?.stack,
        });
      }
      set.status = problem.status;
      set.headers["content-type"] = PROBLEM_CONTENT_TYPE;
      set.headers["x-request-id"] = info.id;
      set.headers["x-content-type-options"] = "nosniff";
      if (hsts) set.headers["strict-transport-security"] = hsts;
      if (error instanceof RateLimitedError) set.headers["retry-after"] = String(error.retryAfterSeconds);
      return JSON.stringify(problem);
    })
    .onAfterResponse(({ request, set, route, path }) => {
      const info = requestInfo(request);
      const status = typeof set.status === "number" ? set.status : 200;
      const seconds = (performance.now() - info.startedAt) / 1000;
      const routeLabel = route || "unmatched";
      requests.inc({ route: routeLabel, method: request.method, status: String(status) });
      durations.observe(seconds, { route: routeLabel });
      // The path only: query strings may carry credentials (e.g. a device-login code).
      log.debug("request", {
        request_id: info.id,
        method: request.method,
        path,
        status,
        ms: Math.round(seconds * 1e4) / 10,
      });
    })
    .use(healthRoutes(deps))
    .use(
      meRoutes(
        deps.identity
          ? identityContext(deps.identity, deps.clientAddress)
          : { actorOf: (r) => deps.auth.authenticate(r.headers.get("authorization")) },
      ),
    )
    .use(docsRoutes(deps))
    .use(webRoutes());
  if (deps.identity) {
    const ctx = identityContext(deps.identity, deps.clientAddress);
    app
      .use(authRoutes(ctx, { secureCookies: options.hstsMaxAgeSeconds !== null }))
      .use(orgRoutes(ctx))
      .use(memberRoutes(ctx))
      .use(projectRoutes(ctx, deps.builds ? { builds: deps.builds.builds } : {}))
      .use(tokenRoutes(ctx))
      .use(trustRoutes(ctx))
      .use(deviceRoutes(ctx));
    if (deps.identity.egress) {
      const egress = { ...ctx, egress: deps.identity.egress };
      app.use(egressRoutes(egress)).use(egressHostRoutes(egress)).use(egressAgentRoutes(egress));
    }
    if (deps.builds) app.use(buildRoutes({ ctx, ...deps.builds }));
    if (deps.registry) app.use(registryRoutes({ ctx, registry: deps.registry }));
    if (deps.admin) app.use(adminRoutes({ ctx, ...deps.admin }));
  }
  if (deps.rpc) app.use(deps.rpc);
  for (const plugin of deps.plugins ?? []) app.use(plugin);
  return app;
}

export type App = ReturnType<typeof createApp>;
