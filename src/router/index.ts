/**
 * @module router
 * The build endpoint: mutual TLS in front of every builder. Clients reach builders only through
 * it: buildkitd authorizes nothing (any certificate of its CA gets its whole API) and an open
 * connection outlives the certificate that opened it, so the endpoint maps each per-build
 * certificate to one build's builder and closes the build's connections when it ends.
 */
export {
  buildRouterFactory,
  DEFAULT_LIMITS,
  type BuildRouter,
  type RouteLookup,
  type RouteTarget,
  type RouterDeps,
  type RouterLimits,
  type RouterTls,
} from "./router.ts";
export { normalizeSerial } from "./client-cert.ts";
export { ConnectionRefused, type RefusalReason } from "./errors.ts";
export type { RouterStats, BuildStats } from "./connections.ts";
export { openBuilderSocket, type BuilderRuntime, type OpenedBuilder } from "./builder-socket.ts";
export { grpcResponseTap, BUILDKIT_STATUS_PATH, type GrpcTap } from "./grpc-tap.ts";
