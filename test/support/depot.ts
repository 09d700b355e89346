/**
 * @module test/support/depot
 * The unchanged depot CLI as the end-to-end suites run it: its binary from the npm package, an
 * environment that points it at a test `serve` (offline, quiet, its config under `home`), and
 * the whole output of a run.
 */
import { join } from "node:path";
import type { Subprocess } from "bun";

export const DEPOT = join(import.meta.dir, "..", "..", "node_modules", "@depot", "cli-linux-x64", "bin", "depot");

/** The depot CLI's environment against `s`; `token` (when given) as DEPOT_TOKEN. */
export function depotEnv(
  s: { url: string; dataDir: string },
  home: string,
  token: string | null,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: home,
    DEPOT_API_URL: s.url,
    SSL_CERT_FILE: join(s.dataDir, "ca.pem"),
    DEPOT_NO_UPDATE_NOTIFIER: "1",
    DEPOT_DISABLE_OTEL: "1",
    DEPOT_ERROR_TELEMETRY: "0",
    DEPOT_NO_SUMMARY_LINK: "1",
    ...(token ? { DEPOT_TOKEN: token } : {}),
    ...extra,
  };
}

/** A spawned command's exit code and its stdout and stderr together, and when it ended. */
export async function finished(
  p: Subprocess<"ignore" | "pipe" | "inherit", "pipe", "pipe">,
): Promise<{ code: number; log: string; at: number }> {
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, log: out + err, at: Date.now() };
}

/** Polls `fn` every 200 ms until it answers something truthy, and returns that; throws naming `what` after `ms`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  ms: number,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(200);
  }
}
