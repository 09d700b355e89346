/**
 * @module appliance/status-tap
 * What the build endpoint does with a BuildKit status message it observes: decoded within the
 * decoder's limits and handed to the build; one it cannot decode is logged and skipped (the
 * build's bytes flow on unchanged either way: the tap only watches).
 */
import { statusToReport, type BuildsService } from "../builds/index.ts";
import type { Logger } from "../log/logger.ts";
import { StatusResponse } from "../wire/buildkit.ts";
import { decode, type Msg } from "../wire/proto.ts";

export function statusObserver(buildId: string, deps: { builds: () => Pick<BuildsService, "observed"> | null | undefined; log: Pick<Logger, "warn"> }) {
  return (_path: string, message: Uint8Array): void => {
    let status: Msg;
    try {
      status = decode(StatusResponse, message);
    } catch (e) {
      deps.log.warn("BuildKit status message skipped", { build: buildId, bytes: message.length, error: (e as Error).message });
      return;
    }
    deps.builds()?.observed(buildId, statusToReport([status]));
  };
}
