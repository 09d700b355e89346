/**
 * @module cli/server/fail-selftest
 * `slipway __fail --how throw|callback|rejection`: hidden (not in --help). Fails with an error
 * no handler expects — thrown by the command, thrown in a timer callback, or a promise rejected
 * with nobody awaiting it — so the end-to-end tests can show, on the compiled binary, that any
 * unexpected error is one line and exit 1, never a stack trace or the bundled source around it.
 */
import { UsageError } from "../../errors.ts";
import type { Command } from "../command.ts";

export const failSelftestCommand: Command = {
  name: "__fail",
  summary: "(internal) fail with an unexpected error",
  usage: "slipway __fail --how throw|callback|rejection",
  options: { how: { type: "string" } },
  optionHelp: { how: "throw (from the command), callback (from a timer) or rejection (unawaited)" },
  async run(ctx) {
    const boom = () =>
      new TypeError("Cannot read properties of undefined (reading 'selftest')\n    at fake (bundle.js:1:1)");
    switch (ctx.values.how) {
      case "throw":
        throw boom();
      case "callback":
        setTimeout(() => {
          throw boom();
        }, 1);
        break;
      case "rejection":
        void Promise.reject(boom());
        break;
      default:
        throw new UsageError("__fail needs --how throw, callback or rejection");
    }
    await Bun.sleep(1000);
    return 0; // not reached: the process-wide handler exits first
  },
};
