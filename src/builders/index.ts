/**
 * @module builders
 * Single-tenant BuildKit builders on the local Docker engine.
 */
export {
  builderServiceFactory,
  BuilderUnavailableError,
  type BuilderService,
  type BuilderServiceDeps,
} from "./service.ts";
export { BUILDER_LABELS } from "./engine.ts";
export { builderStoreFactory, type BuilderStore } from "./store.ts";
export type {
  BuilderOrgs,
  BuilderProject,
  BuilderProjects,
  BuilderRef,
  BuilderRow,
  BuilderState,
  BuilderStatus,
  ReadyBuilder,
} from "./types.ts";
export { RUNTIMES, normalizePlatform, platformOfArch, type CachePolicy } from "./runtimes.ts";
export { FALLBACK_PROFILE, isPrivilegeRefusal, type SecurityProfileName } from "./security.ts";
export {
  exporterCheckFactory,
  exporterRefusal,
  exportersNeeded,
  type ExporterCheck,
  type ExportRequest,
} from "./exporters.ts";
export {
  builderCurrencyHealthCheck,
  builderSettingsKey,
  describeOutdated,
  imageDifference,
  type OutdatedBuilder,
} from "./currency.ts";
export {
  BINFMT_DIR,
  binfmtHandler,
  describeEmulation,
  emulationProblem,
  emulationStatus,
  type BinfmtHandler,
  type EmulationStatus,
} from "./emulation.ts";
export {
  builderNetworkPolicyFactory,
  networkPolicyHealthCheck,
  parseEndpoints,
  policyNames,
  type BuilderNetworkPolicy,
  type PolicyState,
} from "./network-policy.ts";
