/**
 * @module builders/image
 * Builder images: the `dockerd` runtime image assembled from Debian packages, image tarballs
 * loaded for air-gapped sites, presence checks for doctor and /readyz, and the contract (paths,
 * labels) between the image and the builder service that starts containers from it; SHA256SUMS
 * checks of a tarball before it is loaded.
 */
export {
  BUILDER_SOCKET_DIR,
  DEFAULT_BUILDKITD_IMAGE,
  DEFAULT_DOCKERD_IMAGE,
  DOCKERD_DATA_ROOT,
  DOCKERD_ENTRYPOINT,
  DOCKERD_SOCKET_NAME,
  LABEL_RECIPE,
  LABEL_RUNTIME,
  LABEL_SUITE,
  PACKAGES,
  SUITES,
  recipeHash,
  type Suite,
} from "./recipe.ts";
export { defaultMirror, FALLBACK_MIRROR } from "./mirror.ts";
export {
  builderImageServiceFactory,
  splitRef,
  type BuildOptions,
  type BuiltImage,
  type BuilderImageService,
  type BuilderRuntimeName,
  type ImageState,
  type LoadedImages,
} from "./service.ts";
export {
  builderImageHealthCheck,
  configuredImage,
  doctorBuilderImageCheck,
  judgeImage,
  type ConfiguredImage,
} from "./checks.ts";
export { parseSums, sha256File, SUMS_FILE_NAME, sumsBeside, verifyAgainstSums, type VerifiedFile } from "./sums.ts";
export { decodeListWorkers, listWorkersAt, type WorkerInfo } from "./grpc.ts";
export { dockerdContainerProfile, type DockerdContainerOptions } from "./container.ts";
