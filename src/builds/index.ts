/**
 * @module builds
 * The build lifecycle (created → running → finished | failed | canceled | expired).
 */
export {
  buildsServiceFactory,
  type BuildOptionSet,
  type BuildFilter,
  type BuildListRow,
  type BuildRow,
  type BuildStatus,
  type BuildsDeps,
  type BuildsService,
  type ConnectionAnswer,
  type LogInput,
  type StepInput,
} from "./service.ts";
export { statusToReport } from "./status.ts";
export { buildLogsFactory, type BuildLogs } from "./logs.ts";
export {
  buildEventsFactory,
  compareLineIds,
  lineSplitter,
  parseLineId,
  type BuildEvent,
  type BuildEvents,
  type LogLine,
  type StepRow,
  type Topic,
} from "./events.ts";
