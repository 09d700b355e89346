/**
 * @module builders/types
 * The shapes the builder files share: a builder's row and states, what a build gets back, and what
 * a builder needs to know of its project and organization (which the projects and organizations
 * services own: builders ask them through these narrow interfaces, never their tables).
 */
import type { BuilderRuntime } from "../router/index.ts";
import type { SecurityProfileName } from "./security.ts";

export type BuilderState = "absent" | "starting" | "ready" | "idle" | "stopping";

export interface BuilderRow {
  id: string;
  project_id: string;
  platform: string;
  runtime: BuilderRuntime;
  state: BuilderState;
  container_id: string | null;
  container_name: string | null;
  network_id: string | null;
  image: string | null;
  image_id: string | null;
  security_profile: SecurityProfileName | null;
  oci_runtime: string | null;
  emulated: number;
  socket_path: string | null;
  last_error: string | null;
  started_at: string | null;
  ready_at: string | null;
  last_used_at: string | null;
  updated_at: string;
}

/** What a build needs to reach its builder. */
export interface ReadyBuilder {
  builderId: string;
  projectId: string;
  platform: string;
  runtime: BuilderRuntime;
  socketPath: string;
  emulated: boolean;
}

export type BuilderStatus =
  | { state: "ready"; builder: ReadyBuilder }
  | { state: "starting" }
  | { state: "failed"; error: string };

export interface BuilderRef {
  projectId: string;
  platform: string;
}

/** One builder per (project, platform): the key of the in-memory maps. */
export const builderKey = (r: BuilderRef) => `${r.projectId}|${r.platform}`;

/** A project as its builders need it: its organization and its builder and cache settings. */
export interface BuilderProject {
  id: string;
  org_id: string;
  cache_size_gb: number;
  cache_keep_days: number;
  builder_cpus: number;
  builder_memory_mb: number;
  builder_idle_timeout_seconds: number;
}

/** The projects service as builders use it. */
export interface BuilderProjects {
  /** The project's organization and settings; null when there is no such project. */
  builderSettings(projectId: string): BuilderProject | null;
  /** The organization of each of these projects that exists (one lookup for many: admission asks per build). */
  orgsOf(projectIds: readonly string[]): Map<string, string>;
}

/** The organizations service as builders use it. */
export interface BuilderOrgs {
  /** The OCI runtime the organization's builders run under (organizations.builder_oci_runtime); null: the engine's default. */
  builderRuntime(orgId: string): string | null;
}

/** What a build gets of a running builder's row. */
export const toReady = (b: BuilderRow): ReadyBuilder => ({
  builderId: b.id,
  projectId: b.project_id,
  platform: b.platform,
  runtime: b.runtime,
  socketPath: b.socket_path!,
  emulated: b.emulated === 1,
});
