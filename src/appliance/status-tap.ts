/**
 * @module appliance/status-tap
 * What the build endpoint does with a BuildKit status message it observes: decoded (with
 * @bufbuild/protobuf, within the decoding limit) and handed to the build; one it cannot decode is
 * logged and skipped (the build's bytes flow on unchanged either way: the tap only watches).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { checkDecodeLimits } from "../wire/limits.ts";
import { statusToReport, type BuildsService } from "../builds/index.ts";
import type { Logger } from "../log/logger.ts";
import { StatusResponseSchema, type StatusResponse } from "../wire/buildkit.ts";

export function statusObserver(
  buildId: string,
  deps: { builds: () => Pick<BuildsService, "observed"> | null | undefined; log: Pick<Logger, "warn"> },
) {
  return (_path: string, message: Uint8Array): void => {
    let status: StatusResponse;
    try {
      checkDecodeLimits(StatusResponseSchema, message);
      status = fromBinary(StatusResponseSchema, message);
    } catch (e) {
      deps.log.warn("BuildKit status message skipped", {
        build: buildId,
        bytes: message.length,
        error: (e as Error).message,
      });
      return;
    }
    deps.builds()?.observed(buildId, statusToReport([status]));
  };
}
