/**
 * @module wire/depot
 * The depot CLI's build-flow messages, and those of its project and
 * organization commands, as descriptors for ./proto.ts. Shared by the server's Connect handlers
 * and Slipway's own CLI.
 */
import { StatusResponse } from "./buildkit.ts";
import { registerEnum } from "./json.ts";
import { Empty, map, message, Timestamp, type MessageType } from "./proto.ts";

export const BuilderPlatform = { UNSPECIFIED: 0, AMD64: 1, ARM64: 2 } as const;
/** BuilderPlatform → the builder's platform (depot: amd64 builders also build 386, arm64 ones arm). */
export const PLATFORM_OF_BUILDER: Record<number, string> = { [BuilderPlatform.AMD64]: "linux/amd64", [BuilderPlatform.ARM64]: "linux/arm64" };
const BUILDER_OF_PLATFORM: Record<string, number> = { "linux/amd64": 1, "linux/386": 1, "linux/arm64": 2, "linux/arm/v7": 2, "linux/arm/v6": 2 };
/** The BuilderPlatform a target platform is built on, or null for one no builder serves. */
export const builderPlatformOf = (platform: string): number | null => BUILDER_OF_PLATFORM[platform] ?? null;
/** This machine's platform: the default when a client names none. */
export const localPlatform = (): string => (process.arch === "arm64" ? "linux/arm64" : "linux/amd64");

export const BuildStatus = { UNSPECIFIED: 0, RUNNING: 1, FINISHED: 2, FAILED: 3, CANCELED: 4 } as const;
export const Command = { UNSPECIFIED: 0, BUILD: 1, BAKE: 2, BUILDX: 3, DAGGER: 4, EXEC: 5, FLYCTL: 6 } as const;

export const BuildOutput = message("depot.cli.v1.BuildOutput", () => [
  { no: 1, name: "kind", type: "string" },
  { no: 2, name: "attributes", type: map() },
]);
export const BuildOptions = message("depot.cli.v1.BuildOptions", () => [
  { no: 1, name: "command", type: "enum" },
  { no: 2, name: "tags", type: "string", repeated: true },
  { no: 3, name: "outputs", type: BuildOutput, repeated: true },
  { no: 4, name: "push", type: "bool" },
  { no: 5, name: "load", type: "bool" },
  { no: 6, name: "targetName", type: "string", optional: true },
  { no: 7, name: "lint", type: "bool" },
  { no: 8, name: "save", type: "bool" },
  { no: 9, name: "saveTags", type: "string", repeated: true },
]);
const Dagger = message("depot.cli.v1.RequiredEngine.DaggerEngine", () => [{ no: 1, name: "version", type: "string" }]);
export const RequiredEngine = message("depot.cli.v1.RequiredEngine", () => [
  { no: 1, name: "buildkit", type: Empty, oneof: "engine" },
  { no: 2, name: "dagger", type: Dagger, oneof: "engine" },
]);
export const CreateBuildRequest = message("depot.cli.v1.CreateBuildRequest", () => [
  { no: 1, name: "projectId", type: "string", optional: true },
  { no: 2, name: "options", type: BuildOptions, repeated: true },
  { no: 3, name: "requiredEngine", type: RequiredEngine, optional: true },
]);
export const Registry = message("depot.cli.v1.Registry", () => [
  { no: 1, name: "canUseLocalRegistry", type: "bool" },
  { no: 2, name: "proxyImage", type: "string" },
  { no: 3, name: "loadUsingRegistry", type: "bool" },
]);
const Profiler = message("depot.cli.v1.Profiler", () => [{ no: 1, name: "token", type: "string" }]);
const Credential = message("depot.cli.v1.Credential", () => [
  { no: 1, name: "host", type: "string" },
  { no: 2, name: "token", type: "string" },
]);
const AdditionalTag = message("depot.cli.v1.AdditionalTag", () => [
  { no: 1, name: "tag", type: "string" },
  { no: 2, name: "push", type: "bool" },
]);
export const CreateBuildResponse = message("depot.cli.v1.CreateBuildResponse", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "buildToken", type: "string" },
  { no: 3, name: "registry", type: Registry },
  { no: 4, name: "profiler", type: Profiler, optional: true },
  { no: 5, name: "buildUrl", type: "string" },
  { no: 6, name: "projectId", type: "string" },
  { no: 7, name: "additionalCredentials", type: Credential, repeated: true },
  { no: 8, name: "additionalTags", type: AdditionalTag, repeated: true },
]);
export const GetBuildRequest = message("depot.cli.v1.GetBuildRequest", () => [{ no: 1, name: "buildId", type: "string" }]);
export const GetBuildResponse = message("depot.cli.v1.GetBuildResponse", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "projectId", type: "string" },
  { no: 3, name: "buildUrl", type: "string" },
]);
const ErrorResult = message("depot.cli.v1.FinishBuildRequest.BuildError", () => [{ no: 1, name: "error", type: "string" }]);
export const FinishBuildRequest = message("depot.cli.v1.FinishBuildRequest", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "success", type: Empty, oneof: "result" },
  { no: 3, name: "error", type: ErrorResult, oneof: "result" },
  { no: 4, name: "canceled", type: Empty, oneof: "result" },
]);
export const FinishBuildResponse = message("depot.cli.v1.FinishBuildResponse", () => []);
export const GetBuildKitConnectionRequest = message("depot.cli.v1.GetBuildKitConnectionRequest", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "platform", type: "enum" },
]);
export const Cert = message("depot.cli.v1.Cert", () => [
  { no: 1, name: "cert", type: "string" },
  { no: 2, name: "key", type: "string" },
]);
const Pending = message("depot.cli.v1.GetBuildKitConnectionResponse.PendingConnection", () => [{ no: 1, name: "waitMs", type: "int32" }]);
const Active = message("depot.cli.v1.GetBuildKitConnectionResponse.ActiveConnection", () => [
  { no: 1, name: "endpoint", type: "string" },
  { no: 2, name: "serverName", type: "string" },
  { no: 3, name: "cert", type: Cert },
  { no: 4, name: "caCert", type: Cert },
  { no: 5, name: "identity", type: Empty, oneof: "compressor" },
  { no: 6, name: "gzip", type: Empty, oneof: "compressor" },
]);
export const GetBuildKitConnectionResponse = message("depot.cli.v1.GetBuildKitConnectionResponse", () => [
  { no: 1, name: "pending", type: Pending, oneof: "connection" },
  { no: 2, name: "active", type: Active, oneof: "connection" },
]);
export const ReportBuildHealthRequest = message("depot.cli.v1.ReportBuildHealthRequest", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "platform", type: "enum" },
]);
export const ReportBuildHealthResponse = message("depot.cli.v1.ReportBuildHealthResponse", () => [{ no: 1, name: "cancelsAt", type: Timestamp, optional: true }]);
export const BuildStep = message("depot.cli.v1.BuildStep", () => [
  { no: 1, name: "startTime", type: Timestamp },
  { no: 2, name: "durationMs", type: "int32" },
  { no: 3, name: "name", type: "string" },
  { no: 4, name: "error", type: "string", optional: true },
  { no: 5, name: "stableDigest", type: "string", optional: true },
  { no: 6, name: "cached", type: "bool" },
  { no: 7, name: "inputDigests", type: "string", repeated: true },
  { no: 8, name: "ancestorDigests", type: "string", repeated: true },
]);
export const ReportTimingsRequest = message("depot.cli.v1.ReportTimingsRequest", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "buildSteps", type: BuildStep, repeated: true },
]);
export const ReportStatusRequest = message("depot.cli.v1.ReportStatusRequest", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "statuses", type: StatusResponse, repeated: true },
  { no: 3, name: "stableDigests", type: map() },
]);
export const ReportStatusStreamRequest = message("depot.cli.v1.ReportStatusStreamRequest", () => ReportStatusRequest.fields());
const Dockerfile = message("depot.cli.v1.Dockerfile", () => [
  { no: 1, name: "target", type: "string" },
  { no: 2, name: "filename", type: "string" },
  { no: 3, name: "contents", type: "string" },
]);
export const ReportBuildContextRequest = message("depot.cli.v1.ReportBuildContextRequest", () => [
  { no: 1, name: "buildId", type: "string" },
  { no: 2, name: "dockerfiles", type: Dockerfile, repeated: true },
]);
export const ListBuildsRequest = message("depot.cli.v1.ListBuildsRequest", () => [
  { no: 1, name: "projectId", type: "string" },
  { no: 2, name: "pageSize", type: "int32" },
  { no: 3, name: "pageToken", type: "string" },
]);
const BuildSummary = message("depot.cli.v1.Build", () => [
  { no: 1, name: "id", type: "string" },
  { no: 2, name: "status", type: "enum" },
  { no: 4, name: "createdAt", type: Timestamp, optional: true },
  { no: 5, name: "finishedAt", type: Timestamp, optional: true },
]);
export const ListBuildsResponse = message("depot.cli.v1.ListBuildsResponse", () => [
  { no: 1, name: "builds", type: BuildSummary, repeated: true },
  { no: 2, name: "nextPageToken", type: "string" },
]);
export const GetPullInfoRequest = message("depot.cli.v1.GetPullInfoRequest", () => [{ no: 1, name: "buildId", type: "string" }]);
export const GetPullInfoResponse = message("depot.cli.v1.GetPullInfoResponse", () => [
  { no: 1, name: "reference", type: "string" },
  { no: 2, name: "username", type: "string" },
  { no: 3, name: "password", type: "string" },
  { no: 4, name: "options", type: BuildOptions, repeated: true },
  { no: 5, name: "saveForLoad", type: "bool" },
]);
export const GetPullTokenRequest = message("depot.cli.v1.GetPullTokenRequest", () => [
  { no: 1, name: "projectId", type: "string", optional: true },
  { no: 2, name: "buildId", type: "string", optional: true },
]);
export const GetPullTokenResponse = message("depot.cli.v1.GetPullTokenResponse", () => [{ no: 1, name: "token", type: "string" }]);
export const StartPushRequest = message("depot.cli.v1.StartPushRequest", () => [
  { no: 1, name: "tag", type: "string" },
  { no: 2, name: "buildId", type: "string" },
]);
export const StartPushResponse = message("depot.cli.v1.StartPushResponse", () => [{ no: 1, name: "pushId", type: "string" }]);
export const FinishPushRequest = message("depot.cli.v1.FinishPushRequest", () => [
  { no: 1, name: "pushId", type: "string" },
  { no: 2, name: "buildId", type: "string" },
  { no: 3, name: "error", type: "string", optional: true },
]);
const ProjectEntry = message("depot.cli.v1beta1.ListProjectsResponse.Project", () => [
  { no: 1, name: "id", type: "string" },
  { no: 2, name: "name", type: "string" },
  { no: 3, name: "orgId", type: "string" },
  { no: 4, name: "orgName", type: "string" },
]);
export const ListProjectsResponse = message("depot.cli.v1beta1.ListProjectsResponse", () => [{ no: 1, name: "projects", type: ProjectEntry, repeated: true }]);
export const ResetProjectCacheRequest = message("depot.cli.v1beta1.ResetProjectCacheRequest", () => [{ no: 1, name: "projectId", type: "string" }]);
export const ResetProjectCacheResponse = message("depot.cli.v1beta1.ResetProjectCacheResponse", () => [
  { no: 1, name: "name", type: "string" },
  { no: 2, name: "orgName", type: "string" },
]);
export const StartLoginResponse = message("depot.cli.v1beta1.StartLoginResponse", () => [
  { no: 1, name: "id", type: "string" },
  { no: 2, name: "approveUrl", type: "string" },
]);
export const FinishLoginRequest = message("depot.cli.v1beta1.FinishLoginRequest", () => [{ no: 1, name: "id", type: "string" }]);
export const FinishLoginResponse = message("depot.cli.v1beta1.FinishLoginResponse", () => [{ no: 1, name: "token", type: "string" }]);
const OrgEntry = message("depot.core.v1.Organization", () => [
  { no: 1, name: "orgId", type: "string" },
  { no: 2, name: "name", type: "string" },
  { no: 3, name: "createdAt", type: Timestamp, optional: true },
]);
export const ListOrganizationResponse = message("depot.core.v1.ListOrganizationResponse", () => [{ no: 1, name: "organizations", type: OrgEntry, repeated: true }]);

// depot.core.v1.ProjectService (`depot projects create|get|update|delete`), as the pinned CLI
// declares it: keep_bytes (deprecated since) and keep_days; newer clients also send keep_gb.
export const CachePolicy = message("depot.core.v1.CachePolicy", () => [
  { no: 1, name: "keepBytes", type: "int64" },
  { no: 2, name: "keepDays", type: "int32" },
  { no: 3, name: "keepGb", type: "int32" },
]);
export const CoreProject = message("depot.core.v1.Project", () => [
  { no: 1, name: "projectId", type: "string" },
  { no: 2, name: "organizationId", type: "string" },
  { no: 3, name: "name", type: "string" },
  { no: 4, name: "regionId", type: "string" },
  { no: 5, name: "createdAt", type: Timestamp, optional: true },
  { no: 6, name: "cachePolicy", type: CachePolicy, optional: true },
]);
const projectReply = (name: string) => message(`depot.core.v1.${name}`, () => [{ no: 1, name: "project", type: CoreProject, optional: true }]);
const projectIdRequest = (name: string) => message(`depot.core.v1.${name}`, () => [{ no: 1, name: "projectId", type: "string" }]);
export const CoreListProjectsResponse = message("depot.core.v1.ListProjectsResponse", () => [{ no: 1, name: "projects", type: CoreProject, repeated: true }]);
export const GetProjectRequest = projectIdRequest("GetProjectRequest");
export const GetProjectResponse = projectReply("GetProjectResponse");
export const CreateProjectRequest = message("depot.core.v1.CreateProjectRequest", () => [
  { no: 1, name: "name", type: "string" },
  { no: 2, name: "organizationId", type: "string", optional: true },
  { no: 3, name: "regionId", type: "string" },
  { no: 4, name: "cachePolicy", type: CachePolicy, optional: true },
]);
export const CreateProjectResponse = projectReply("CreateProjectResponse");
export const UpdateProjectRequest = message("depot.core.v1.UpdateProjectRequest", () => [
  { no: 1, name: "projectId", type: "string" },
  { no: 2, name: "name", type: "string", optional: true },
  { no: 3, name: "regionId", type: "string", optional: true },
  { no: 4, name: "cachePolicy", type: CachePolicy, optional: true },
]);
export const UpdateProjectResponse = projectReply("UpdateProjectResponse");
export const DeleteProjectRequest = projectIdRequest("DeleteProjectRequest");
export const DeleteProjectResponse = message("depot.core.v1.DeleteProjectResponse", () => []);

export type RpcKind = "unary" | "client_stream" | "server_stream";
export interface RpcMethod {
  path: string;
  input: MessageType;
  output: MessageType;
  kind: RpcKind;
}

const rpc = (service: string, method: string, input: MessageType, output: MessageType, kind: RpcKind = "unary"): RpcMethod => ({ path: `/${service}/${method}`, input, output, kind });
const BUILD = "depot.cli.v1.BuildService";
const PROJECTS = "depot.cli.v1beta1.ProjectsService";
const PUSH = "depot.cli.v1.PushService";
const LOGIN = "depot.cli.v1beta1.LoginService";
const ORGS = "depot.core.v1.OrganizationService";
const CORE_PROJECTS = "depot.core.v1.ProjectService";

export const METHODS = {
  createBuild: rpc(BUILD, "CreateBuild", CreateBuildRequest, CreateBuildResponse),
  getBuild: rpc(BUILD, "GetBuild", GetBuildRequest, GetBuildResponse),
  finishBuild: rpc(BUILD, "FinishBuild", FinishBuildRequest, FinishBuildResponse),
  getBuildKitConnection: rpc(BUILD, "GetBuildKitConnection", GetBuildKitConnectionRequest, GetBuildKitConnectionResponse),
  reportBuildHealth: rpc(BUILD, "ReportBuildHealth", ReportBuildHealthRequest, ReportBuildHealthResponse),
  reportTimings: rpc(BUILD, "ReportTimings", ReportTimingsRequest, Empty),
  reportStatus: rpc(BUILD, "ReportStatus", ReportStatusRequest, Empty),
  reportStatusStream: rpc(BUILD, "ReportStatusStream", ReportStatusStreamRequest, Empty, "client_stream"),
  reportBuildContext: rpc(BUILD, "ReportBuildContext", ReportBuildContextRequest, Empty),
  listBuilds: rpc(BUILD, "ListBuilds", ListBuildsRequest, ListBuildsResponse),
  getPullInfo: rpc(BUILD, "GetPullInfo", GetPullInfoRequest, GetPullInfoResponse),
  getPullToken: rpc(BUILD, "GetPullToken", GetPullTokenRequest, GetPullTokenResponse),
  startPush: rpc(PUSH, "StartPush", StartPushRequest, StartPushResponse),
  finishPush: rpc(PUSH, "FinishPush", FinishPushRequest, Empty),
  listProjects: rpc(PROJECTS, "ListProjects", Empty, ListProjectsResponse),
  resetProjectCache: rpc(PROJECTS, "ResetProjectCache", ResetProjectCacheRequest, ResetProjectCacheResponse),
  startLogin: rpc(LOGIN, "StartLogin", Empty, StartLoginResponse),
  finishLogin: rpc(LOGIN, "FinishLogin", FinishLoginRequest, FinishLoginResponse, "server_stream"),
  listOrganizations: rpc(ORGS, "ListOrganizations", Empty, ListOrganizationResponse),
  coreListProjects: rpc(CORE_PROJECTS, "ListProjects", Empty, CoreListProjectsResponse),
  getProject: rpc(CORE_PROJECTS, "GetProject", GetProjectRequest, GetProjectResponse),
  createProject: rpc(CORE_PROJECTS, "CreateProject", CreateProjectRequest, CreateProjectResponse),
  updateProject: rpc(CORE_PROJECTS, "UpdateProject", UpdateProjectRequest, UpdateProjectResponse),
  deleteProject: rpc(CORE_PROJECTS, "DeleteProject", DeleteProjectRequest, DeleteProjectResponse),
} as const;
export type MethodName = keyof typeof METHODS;

registerEnum("BUILDER_PLATFORM_", BuilderPlatform);
registerEnum("BUILD_STATUS_", BuildStatus);
registerEnum("COMMAND_", Command);
