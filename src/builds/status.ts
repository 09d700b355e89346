/**
 * @module builds/status
 * BuildKit's status messages (moby.buildkit.v1.StatusResponse) → the steps and log lines a build
 * keeps. They arrive two ways: seen at the build endpoint on the builder's Control/Status stream,
 * or reported by a client through ReportStatus(Stream).
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { StatusResponse } from "../wire/buildkit.ts";
import type { LogInput, StepInput } from "./service.ts";

/** BuildKit status batches → the steps and log lines the builds service keeps. */
export function statusToReport(statuses: readonly StatusResponse[]): { steps: StepInput[]; logs: LogInput[] } {
  const steps: StepInput[] = [];
  const logs: LogInput[] = [];
  for (const s of statuses) {
    for (const v of s.vertexes) {
      steps.push({
        digest: v.digest,
        name: v.name,
        cached: v.cached,
        started: dateOf(v.started),
        completed: dateOf(v.completed),
        error: v.error,
      });
    }
    for (const l of s.logs)
      logs.push({ vertex: l.vertex, stream: Number(l.stream), at: dateOf(l.timestamp), data: l.msg });
  }
  return { steps, logs };
}

const dateOf = (t: Timestamp | undefined): Date | null => (t ? timestampDate(t) : null);
