/**
 * @module cli/client/builds
 * `slipway builds logs BUILD_ID [--follow]`: a build's log. With --follow it reads the build's
 * live events (Server-Sent Events from the API, the same stream the build page uses), prints
 * each log line as it comes and exits with the build's outcome: 0 when it finished, 1 when it
 * failed, was canceled or expired (the reason on stderr).
 */
import { seg } from "../../api-client/index.ts";
import type { BuildView } from "../../builds/models.ts";
import { EXIT_FAILED, EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import { dispatch } from "../subcommands.ts";
import { connect } from "./connection.ts";

type LogLine = { vertex: string; stream: number; at: string; text: string };

async function followLog(ctx: CommandContext, id: string): Promise<number> {
  let outcome: BuildView | null = null;
  await connect(ctx).follow(`/api/v1/builds/${seg(id)}/events`, (e) => {
    if (e.event === "log") {
      const line = e.data as LogLine;
      if (ctx.client.json) printJson(ctx.io, line);
      else ctx.io.out(line.text);
    } else if (e.event === "end") {
      outcome = e.data as BuildView;
      return "stop";
    }
    return undefined;
  });
  const b = outcome as BuildView | null;
  if (!b) return EXIT_FAILED;
  if (b.status === "finished") return EXIT_OK;
  ctx.io.err(`build ${b.id} ${b.status}${b.error ? `: ${b.error}` : ""}`);
  return EXIT_FAILED;
}

export const buildsCommand: Command = {
  name: "builds",
  summary: "show a build's log, or follow it live until the build ends",
  usage: "slipway builds logs BUILD_ID [--follow]",
  options: { follow: { type: "boolean", short: "f" } },
  optionHelp: {
    follow: "logs: print lines as the build writes them and exit with its outcome (0 finished, 1 otherwise)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "builds",
      {
        logs: {
          options: ["follow"],
          args: ["BUILD_ID"],
          async run(_, [id]) {
            if (ctx.values.follow) return followLog(ctx, id!);
            const text = await connect(ctx).text(`/api/v1/builds/${seg(id!)}/logs`);
            ctx.io.out(text.replace(/\n$/, ""));
            return EXIT_OK;
          },
        },
      },
      ctx,
    ),
};
