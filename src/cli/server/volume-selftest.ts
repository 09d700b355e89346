/**
 * @module cli/server/volume-selftest
 * `slipway __volume-selftest --dir DIR`: hidden (not in --help). Runs the LUKS volume life cycle
 * against the real kernel inside DIR; the VM test boots a Debian kernel to run it, because the
 * machines CI runs on have no device-mapper. Needs root, cryptsetup and dm-crypt.
 */
import { UsageError } from "../../errors.ts";
import { selftestCrashChild, volumeSelftest } from "../../volumes/selftest.ts";
import type { Command } from "../command.ts";

export const volumeSelftestCommand: Command = {
  name: "__volume-selftest",
  summary: "(internal) exercise LUKS cache volumes against the running kernel",
  usage: "slipway __volume-selftest --dir DIR",
  options: { dir: { type: "string" }, "crash-child": { type: "boolean" } },
  optionHelp: {
    dir: "an empty scratch directory (everything is created inside it)",
    "crash-child": "(internal) the process the self-test kills",
  },
  async run(ctx) {
    const dir = ctx.values.dir;
    if (typeof dir !== "string" || !dir) throw new UsageError("__volume-selftest needs --dir");
    if (ctx.values["crash-child"]) return selftestCrashChild(dir, ctx.io);
    return volumeSelftest(dir, ctx.io);
  },
};
