/**
 * @module wire/depot
 * The depot CLI's wire contract: the services and messages generated from proto/depot by
 * protoc-gen-es (./gen, checked in so a build needs no generator and no network; `bun run proto`
 * regenerates it and a test checks the checked-in copy is what the generator makes), the methods
 * Slipway serves, and the platform mapping. Shared by the server's Connect handlers and
 * Slipway's own CLI.
 */
import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { BuilderPlatform, BuildService } from "./gen/depot/cli/v1/build_pb.ts";
import { PushService } from "./gen/depot/cli/v1/push_pb.ts";
import { LoginService } from "./gen/depot/cli/v1beta1/login_pb.ts";
import { ProjectsService } from "./gen/depot/cli/v1beta1/projects_pb.ts";
import { OrganizationService } from "./gen/depot/core/v1/organization_pb.ts";
import { ProjectService } from "./gen/depot/core/v1/project_pb.ts";

export { BuilderPlatform, BuildService, BuildStatus, Command } from "./gen/depot/cli/v1/build_pb.ts";
export { PushService } from "./gen/depot/cli/v1/push_pb.ts";
export { LoginService } from "./gen/depot/cli/v1beta1/login_pb.ts";
export { ProjectsService } from "./gen/depot/cli/v1beta1/projects_pb.ts";
export { OrganizationService } from "./gen/depot/core/v1/organization_pb.ts";
export { ProjectService } from "./gen/depot/core/v1/project_pb.ts";

/** BuilderPlatform → the builder's platform (depot: amd64 builders also build 386, arm64 ones arm). */
export const PLATFORM_OF_BUILDER: Record<number, string> = {
  [BuilderPlatform.AMD64]: "linux/amd64",
  [BuilderPlatform.ARM64]: "linux/arm64",
};
const BUILDER_OF_PLATFORM: Record<string, number> = {
  "linux/amd64": 1,
  "linux/386": 1,
  "linux/arm64": 2,
  "linux/arm/v7": 2,
  "linux/arm/v6": 2,
};
/** The BuilderPlatform a target platform is built on, or null for one no builder serves. */
export const builderPlatformOf = (platform: string): number | null => BUILDER_OF_PLATFORM[platform] ?? null;
/** This machine's platform: the default when a client names none. */
export const localPlatform = (): string => (process.arch === "arm64" ? "linux/arm64" : "linux/amd64");

export type RpcKind = "unary" | "client_stream" | "server_stream";
export interface RpcMethod {
  /** `/package.Service/Method`, the route the CLI posts to. */
  path: string;
  input: DescMessage;
  output: DescMessage;
  kind: RpcKind;
  /** The generated method descriptor the Connect router serves. */
  desc: DescMethod;
}

const rpc = (service: DescService, localName: string): RpcMethod => {
  const desc = service.method[localName as keyof typeof service.method] as DescMethod | undefined;
  if (!desc) throw new Error(`${service.typeName} has no method ${localName}`); // a typo here, at start-up
  const kind: RpcKind =
    desc.methodKind === "client_streaming"
      ? "client_stream"
      : desc.methodKind === "server_streaming"
        ? "server_stream"
        : "unary";
  return { path: `/${service.typeName}/${desc.name}`, input: desc.input, output: desc.output, kind, desc };
};

/** Every depot method Slipway serves (anything else under `/depot.` answers `unimplemented`). */
export const METHODS = {
  createBuild: rpc(BuildService, "createBuild"),
  getBuild: rpc(BuildService, "getBuild"),
  finishBuild: rpc(BuildService, "finishBuild"),
  getBuildKitConnection: rpc(BuildService, "getBuildKitConnection"),
  reportBuildHealth: rpc(BuildService, "reportBuildHealth"),
  reportTimings: rpc(BuildService, "reportTimings"),
  reportStatus: rpc(BuildService, "reportStatus"),
  reportStatusStream: rpc(BuildService, "reportStatusStream"),
  reportBuildContext: rpc(BuildService, "reportBuildContext"),
  listBuilds: rpc(BuildService, "listBuilds"),
  getPullInfo: rpc(BuildService, "getPullInfo"),
  getPullToken: rpc(BuildService, "getPullToken"),
  startPush: rpc(PushService, "startPush"),
  finishPush: rpc(PushService, "finishPush"),
  listProjects: rpc(ProjectsService, "listProjects"),
  resetProjectCache: rpc(ProjectsService, "resetProjectCache"),
  startLogin: rpc(LoginService, "startLogin"),
  finishLogin: rpc(LoginService, "finishLogin"),
  listOrganizations: rpc(OrganizationService, "listOrganizations"),
  coreListProjects: rpc(ProjectService, "listProjects"),
  getProject: rpc(ProjectService, "getProject"),
  createProject: rpc(ProjectService, "createProject"),
  updateProject: rpc(ProjectService, "updateProject"),
  deleteProject: rpc(ProjectService, "deleteProject"),
} as const;
export type MethodName = keyof typeof METHODS;
