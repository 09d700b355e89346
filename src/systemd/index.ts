/**
 * @module systemd
 * Living under systemd without libsystemd: sd_notify (readiness, watchdog, stopping, status) and
 * detecting that stderr is the journal (for sd-daemon priority prefixes in the log).
 */
export {
  encodeNotifyMessage,
  notifySocketAddress,
  startWatchdog,
  systemdNotifier,
  watchdogIntervalMs,
  type SystemdNotifier,
  type WatchdogOptions,
} from "./notify.ts";
export { isJournalStream, stderrIsJournal } from "./journal.ts";
