/**
 * @module router
 * The build endpoint: mutual TLS in front of every builder (DESIGN decisions 1 and 2).
 */
export { buildRouterFactory, DEFAULT_LIMITS, type BuildRouter, type RouteLookup, type RouteTarget, type RouterDeps, type RouterLimits, type RouterTls } from "./router.ts";
export { normalizeSerial } from "./client-cert.ts";
export { ConnectionRefused, type RefusalReason } from "./errors.ts";
export type { RouterStats, BuildStats } from "./connections.ts";
export { openBuilderSocket, type BuilderRuntime, type OpenedBuilder } from "./builder-socket.ts";
export { grpcResponseTap, BUILDKIT_STATUS_PATH, type GrpcTap } from "./grpc-tap.ts";
