/**
 * @module builders/image/checks
 * Which builder runtime and image are configured, and whether that image is on the local engine:
 * one finding for `slipway doctor` and one `/readyz` check. A missing image is a warning (the
 * appliance serves its API; builds cannot start) with the command that fixes it.
 */
import type { Finding } from "../../health/finding.ts";
import type { CheckResult, HealthCheck } from "../../health/registry.ts";
import { recipeHash, SUITES, type Suite } from "./recipe.ts";
import type { BuilderImageService, BuilderRuntimeName, ImageState } from "./service.ts";

export interface ConfiguredImage {
  runtime: BuilderRuntimeName;
  /** The image reference for that runtime (builders.dockerd_image or builders.buildkitd_image). */
  image: string;
}

/** The runtime's image from the `builders` config section. */
export function configuredImage(builders: {
  runtime: BuilderRuntimeName;
  dockerd_image: string;
  buildkitd_image: string;
}): ConfiguredImage {
  return {
    runtime: builders.runtime,
    image: builders.runtime === "dockerd" ? builders.dockerd_image : builders.buildkitd_image,
  };
}

export function howToGet(c: ConfiguredImage): string {
  return c.runtime === "dockerd"
    ? `assemble it: sudo slipway builder-image build --tag ${c.image} (needs debootstrap and a Debian mirror)`
    : `pull it (docker pull ${c.image}) or, offline, load a 'docker save' tarball: slipway builder-image import FILE.tar`;
}

export interface ImageVerdict {
  status: "ok" | "warn";
  message: string;
  state: ImageState | null;
  fix?: string;
}

/** Looks the configured image up; never throws (an unreachable engine is a warning). */
export async function judgeImage(
  service: Pick<BuilderImageService, "inspect">,
  c: ConfiguredImage,
): Promise<ImageVerdict> {
  const what = `runtime ${c.runtime}, image ${c.image}`;
  let state: ImageState;
  try {
    state = await service.inspect(c.image);
  } catch (e) {
    return {
      status: "warn",
      message: `${what}: cannot ask Docker (${(e as Error).message})`,
      state: null,
      fix: "start dockerd; builders need it",
    };
  }
  if (!state.present)
    return {
      status: "warn",
      message: `${what}: not present on the Docker engine, builders cannot start`,
      state,
      fix: howToGet(c),
    };
  if (c.runtime === "dockerd" && state.runtime !== "dockerd") {
    return {
      status: "warn",
      message: `${what} (${state.id}) was not assembled by slipway builder-image build (no io.slipway.runtime=dockerd label)`,
      state,
      fix: howToGet(c),
    };
  }
  const suite = state.suite as Suite | undefined;
  if (c.runtime === "dockerd" && suite && SUITES.includes(suite) && state.recipe !== recipeHash(suite)) {
    return {
      status: "warn",
      message: `${what} (${state.id}) was assembled by another Slipway version (recipe ${state.recipe ?? "unknown"}, this one makes ${recipeHash(suite)}); builders still start from it`,
      state,
      fix: `rebuild it: sudo slipway builder-image build --suite ${suite} --tag ${c.image}`,
    };
  }
  return {
    status: "ok",
    message: `${what}, present as ${state.digest ?? state.id}${state.suite ? ` (Debian ${state.suite})` : ""}`,
    state,
  };
}

export async function doctorBuilderImageCheck(
  service: Pick<BuilderImageService, "inspect">,
  c: ConfiguredImage,
): Promise<Finding> {
  const v = await judgeImage(service, c);
  return { check: "builder-image", status: v.status, message: v.message, ...(v.fix ? { fix: v.fix } : {}) };
}

/** `/readyz` check `builders:image`: pass when present, warn otherwise. */
export function builderImageHealthCheck(
  service: Pick<BuilderImageService, "inspect">,
  c: ConfiguredImage,
): HealthCheck {
  return {
    name: "builders:image",
    async run(): Promise<CheckResult> {
      const v = await judgeImage(service, c);
      return {
        status: v.status === "ok" ? "pass" : "warn",
        output: v.fix ? `${v.message}; ${v.fix}` : v.message,
        observedValue: v.state?.present ?? false,
      };
    },
  };
}
