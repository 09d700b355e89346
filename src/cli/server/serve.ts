/**
 * @module cli/server/serve
 * `slipway serve`: run the appliance until SIGTERM or SIGINT, then drain its builds and stop gracefully.
 * Under systemd (Type=notify) it says READY=1 once the API and the build endpoint listen, pings
 * the watchdog while the event loop and the database answer, and says STOPPING=1 and how the
 * drain goes, extending the stop timeout while builds may still finish.
 */
import { startAppliance } from "../../appliance/runtime.ts";
import { recordServedVersion } from "../../appliance/served-versions.ts";
import { createLogger, type LogFormat, type Logger } from "../../log/logger.ts";
import {
  startWatchdog,
  stderrIsJournal,
  systemdNotifier,
  watchdogIntervalMs,
  type SystemdNotifier,
} from "../../systemd/index.ts";
import { VERSION } from "../../version.ts";
import { EXIT_OK, type Command } from "../command.ts";
import { SERVER_HELP, SERVER_OPTIONS, loadServerConfig } from "./options.ts";
import type { Override } from "../../config/index.ts";

export const serveCommand: Command = {
  name: "serve",
  summary: "run the appliance: API, web UI and build endpoint",
  usage:
    "slipway serve [--config FILE] [--data-dir DIR] [--listen ADDR] [--build-listen ADDR] [--public-url URL] [--insecure-http] [--set section.key=value ...]",
  options: {
    ...SERVER_OPTIONS,
    listen: { type: "string" },
    "build-listen": { type: "string" },
    "public-url": { type: "string" },
    "insecure-http": { type: "boolean" },
  },
  optionHelp: {
    ...SERVER_HELP,
    listen: "API and web UI address (server.listen, default 0.0.0.0:8443)",
    "build-listen": "build endpoint address (server.build_listen, default 0.0.0.0:8444)",
    "public-url": "URL clients use to reach this server (server.public_url)",
    "insecure-http": "serve plain HTTP instead of HTTPS: local development only (server.insecure_http)",
  },
  async run(ctx) {
    const v = ctx.values;
    const extra: Override[] = [];
    if (typeof v.listen === "string") extra.push({ key: "server.listen", value: v.listen, source: "--listen" });
    if (typeof v["build-listen"] === "string")
      extra.push({ key: "server.build_listen", value: v["build-listen"], source: "--build-listen" });
    if (typeof v["public-url"] === "string")
      extra.push({ key: "server.public_url", value: v["public-url"], source: "--public-url" });
    if (v["insecure-http"] === true)
      extra.push({ key: "server.insecure_http", value: true, source: "--insecure-http" });
    const loaded = loadServerConfig(ctx, extra);
    const { log: logCfg } = loaded.config;
    const format: LogFormat = logCfg.format === "auto" ? (ctx.io.isTTY ? "pretty" : "json") : logCfg.format;
    const log = createLogger({ level: logCfg.level, format, journalPriority: stderrIsJournal(ctx.env) });
    const notifier = systemdNotifier(ctx.env);

    // Nothing is logged before the preflight passes: a refused start prints one line, the error.
    const app = await startAppliance({ loaded, log, env: ctx.env });
    const { bootstrap, caFile } = app.state;
    const served = recordServedVersion(app.state.db, VERSION);
    if (served.previous)
      log.info(
        served.firstTime
          ? `upgraded from ${served.previous}`
          : `serving again after ${served.previous} (a release that served this data dir before)`,
        { version: VERSION, previous_version: served.previous },
      );
    log.info("slipway is serving", {
      version: VERSION,
      url: app.localUrl,
      public_url: app.publicUrl,
      config_file: loaded.configFile ?? "(none: embedded defaults)",
      data_dir: loaded.dataDir,
      ca_file: caFile,
    });
    if (bootstrap.created) {
      log.info(
        "created the administrator 'admin' and organization 'default'; the one-time admin token is in a file readable only by this user",
        {
          admin_token_file: bootstrap.tokenFile,
          try: `curl --cacert ${caFile} -H "Authorization: Bearer $(cat ${bootstrap.tokenFile})" ${app.localUrl}/api/v1/me`,
        },
      );
    }

    let watchdog: { stop(): void } | null = null;
    // First SIGTERM/SIGINT: drain (no new builds; running ones finish up to server.drain_seconds,
    // then are canceled), then stop. Another signal ends the drain at once.
    const stopped = new Promise<void>((resolve) => {
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals > 1) {
          log.warn(
            signals === 2
              ? "stop signal during the drain: canceling the builds still running now"
              : "stop signal: not waiting for canceled builds' clients",
            { signal: sig },
          );
          app.interruptDrain();
          return;
        }
        log.info("shutting down", { signal: sig });
        const { drain_seconds: drainSeconds, shutdown_timeout_seconds: shutdownSeconds } = loaded.config.server;
        const status = drainStatus(notifier, app.buildsInFlight, drainSeconds, shutdownSeconds);
        void app
          .drain()
          .catch((e: unknown) => log.error("the drain failed; stopping anyway", { error: e as Error }))
          .then(() => {
            status.drained();
            watchdog?.stop(); // the database closes next: nothing left to prove
            return app.stop();
          })
          .then(resolve);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    });
    // Ready only once a stop signal drains: systemd may send one the moment it reads READY=1.
    notifier.notify({ READY: 1, STATUS: `serving ${app.publicUrl}` });
    watchdog = serveWatchdog(ctx.env, notifier, () => app.state.db.query("SELECT 1").get(), log);
    await stopped;
    notifier.close();
    log.info("stopped cleanly");
    return EXIT_OK;
  },
};

/** WATCHDOG=1 every WATCHDOG_USEC/2 while `probe` (the database) answers; null when no watchdog is armed. */
function serveWatchdog(
  env: Record<string, string | undefined>,
  notifier: SystemdNotifier,
  probe: () => unknown,
  log: Logger,
) {
  const intervalMs = watchdogIntervalMs(env);
  if (!notifier.enabled || intervalMs === null) return null;
  return startWatchdog({
    notifier,
    intervalMs,
    probe,
    onProbeFailed: (e) =>
      log.warn("watchdog: the database does not answer; not pinging systemd", { error: e as Error }),
  });
}

// Headroom over what the drain and the shutdown may still take, for the service manager's timer.
const STOP_MARGIN_SECONDS = 15;

/**
 * STOPPING=1, then every few seconds a STATUS line ("draining N builds") and EXTEND_TIMEOUT_USEC
 * covering the drain time left plus the shutdown timeout: a drain_seconds raised without raising
 * the unit's TimeoutStopSec still fits. It never extends past the configured times (counted from
 * the drain's start), so a stuck stop is still killed.
 */
function drainStatus(notifier: SystemdNotifier, inFlight: () => number, drainSeconds: number, shutdownSeconds: number) {
  const deadline = Date.now() + drainSeconds * 1000;
  const say = (first: boolean) => {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    const n = inFlight();
    notifier.notify({
      ...(first ? { STOPPING: 1 } : {}),
      STATUS: `draining ${n} build${n === 1 ? "" : "s"} (up to ${left} s left)`,
      EXTEND_TIMEOUT_USEC: (left + shutdownSeconds + STOP_MARGIN_SECONDS) * 1_000_000,
    });
  };
  say(true);
  const timer = notifier.enabled ? setInterval(() => say(false), 5000) : null;
  return {
    drained() {
      if (timer) clearInterval(timer);
      notifier.notify({
        STATUS: "drained: finishing requests and closing the database",
        EXTEND_TIMEOUT_USEC: (shutdownSeconds + STOP_MARGIN_SECONDS) * 1_000_000,
      });
    },
  };
}
