/**
 * @module builds/status
 * BuildKit's status messages (moby.buildkit.v1.StatusResponse) → the steps and log lines a build
 * keeps. They arrive two ways: seen at the build endpoint on the builder's Control/Status stream,
 * or reported by a client through ReportStatus(Stream).
 */
import type { Msg } from "../wire/proto.ts";
import { fromTimestamp } from "../wire/proto.ts";
import type { LogInput, StepInput } from "./service.ts";

/** BuildKit status batches → the steps and log lines the builds service keeps. */
export function statusToReport(statuses: Msg[]): { steps: StepInput[]; logs: LogInput[] } {
  const steps: StepInput[] = [];
  const logs: LogInput[] = [];
  for (const s of statuses) {
    for (const v of s.vertexes as Msg[]) {
      steps.push({ digest: v.digest as string, name: v.name as string, cached: v.cached as boolean, started: fromTimestamp(v.started as Msg | undefined), completed: fromTimestamp(v.completed as Msg | undefined), error: v.error as string });
    }
    for (const l of s.logs as Msg[]) logs.push({ vertex: l.vertex as string, stream: Number(l.stream), at: fromTimestamp(l.timestamp as Msg | undefined), data: l.msg as Uint8Array });
  }
  return { steps, logs };
}

