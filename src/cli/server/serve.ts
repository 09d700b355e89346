/**
 * @module cli/server/serve
 * `slipway serve`: run the appliance until SIGTERM or SIGINT, then drain its builds and stop gracefully.
 */
import { startAppliance } from "../../appliance/runtime.ts";
import { createLogger, type LogFormat } from "../../log/logger.ts";
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
    const log = createLogger({ level: logCfg.level, format });

    // Nothing is logged before the preflight passes: a refused start prints one line, the error.
    const app = await startAppliance({ loaded, log, env: ctx.env });
    const { bootstrap, caFile } = app.state;
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

    // First SIGTERM/SIGINT: drain (no new builds; running ones finish up to server.drain_seconds,
    // then are canceled), then stop. Another signal ends the drain at once.
    await new Promise<void>((resolve) => {
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
        void app
          .drain()
          .catch((e: unknown) => log.error("the drain failed; stopping anyway", { error: e as Error }))
          .then(() => app.stop())
          .then(resolve);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    });
    log.info("stopped cleanly");
    return EXIT_OK;
  },
};
