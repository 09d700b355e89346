/**
 * @module cli/server/doctor
 * `slipway doctor`: what this host can and cannot do for Slipway, one line per check with a fix.
 * Exits 1 when something would stop `serve` from starting.
 */
import { runDoctor } from "../../doctor/checks.ts";
import { EXIT_FAILED, EXIT_OK, printJson, type Command } from "../command.ts";
import { SERVER_HELP, SERVER_OPTIONS, loadServerConfig } from "./options.ts";

export const doctorCommand: Command = {
  name: "doctor",
  summary: "check this host: Docker, builder image, dm-crypt, iptables/ipset, ports, data dir, master key",
  usage: "slipway doctor [--json] [--config FILE] [--data-dir DIR]",
  options: { ...SERVER_OPTIONS },
  optionHelp: { ...SERVER_HELP },
  async run(ctx) {
    const loaded = loadServerConfig(ctx);
    const findings = await runDoctor({ loaded, env: ctx.env });
    if (ctx.client.json) printJson(ctx.io, { findings });
    else {
      for (const f of findings) {
        ctx.io.out(
          `${f.status.padEnd(4)}  ${f.check}: ${f.message}${f.fix && f.status !== "ok" ? ` — fix: ${f.fix}` : ""}`,
        );
      }
    }
    return findings.some((f) => f.status === "fail") ? EXIT_FAILED : EXIT_OK;
  },
};
