/**
 * @module test/bench/baseline-server
 * Baseline for `bun run bench`: the smallest useful Bun HTTPS server, compiled by the bench
 * with the same `bun build --compile --target=bun-linux-x64-baseline` as `dist/slipway`, so
 * start time, idle RSS and requests/s of the appliance can be read as ratios against what
 * the runtime alone costs. Answers 200 "ok" on every path; stops on SIGTERM/SIGINT (exit 0).
 * Usage: baseline --cert FILE --key FILE --listen 127.0.0.1:PORT
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { cert: { type: "string" }, key: { type: "string" }, listen: { type: "string" } },
});
if (!values.cert || !values.key || !values.listen) {
  console.error("usage: baseline --cert FILE --key FILE --listen HOST:PORT");
  process.exit(2);
}
const sep = values.listen.lastIndexOf(":");
const hostname = values.listen.slice(0, sep);
const port = Number(values.listen.slice(sep + 1));

const server = Bun.serve({
  hostname,
  port,
  tls: { cert: Bun.file(values.cert), key: Bun.file(values.key) },
  fetch: () => new Response("ok"),
});

const stop = () => {
  server.stop(true);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
