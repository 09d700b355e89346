/**
 * @module test/support/serve
 * Running `slipway` processes in tests: free ports, a `serve` that is waited on until /readyz
 * answers, captured output, and commands run to completion.
 */
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** `n` distinct free ports: all are held until the last is found, so none is handed out twice. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runSlipway(bin: string, args: string[], env: Record<string, string> = {}): Promise<CommandResult> {
  const proc = Bun.spawn([bin, ...args], { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

export interface Served {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  /** Where the build endpoint listens (on 127.0.0.1). */
  buildPort: number;
  dataDir: string;
  ca: string;
  /** Everything written to stderr so far (JSON log lines). */
  logs(): string;
  /** fetch trusting the appliance's CA. */
  get(path: string, init?: RequestInit): Promise<Response>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
}

export interface ServeOptions {
  /** PEM to trust instead of <dataDir>/ca.pem (an operator certificate). */
  trust?: string;
  /** Plain HTTP (--insecure-http). */
  http?: boolean;
  /** Sets --public-url to this host and the chosen port (build clients then dial this host). */
  publicHost?: string;
  /** Where the API listens (default 127.0.0.1); 0.0.0.0 lets builders reach it on their gateway. */
  listenHost?: string;
}

export async function serve(bin: string, dataDir: string, extraArgs: string[] = [], env: Record<string, string> = {}, opts: ServeOptions = {}): Promise<Served> {
  const [port, buildPort] = (await freePorts(2)) as [number, number];
  const publicUrl = opts.publicHost ? ["--public-url", `${opts.http ? "http" : "https"}://${opts.publicHost}:${port}`] : [];
  const proc = Bun.spawn([bin, "serve", "--data-dir", dataDir, "--listen", `${opts.listenHost ?? "127.0.0.1"}:${port}`, "--build-listen", `127.0.0.1:${buildPort}`, ...publicUrl, ...extraArgs], {
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env },
  });
  let logs = "";
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of proc.stderr) logs += decoder.decode(chunk);
  })();
  const url = `${opts.http ? "http" : "https"}://localhost:${port}`;
  const deadline = Date.now() + 15_000;
  let ca = opts.trust ?? "";
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`serve exited with ${proc.exitCode}:\n${logs}`);
    try {
      if (!opts.http) ca ||= readFileSync(join(dataDir, "ca.pem"), "utf8");
      const r = await fetch(`${url}/readyz`, opts.http ? {} : { tls: { ca } });
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`serve did not become ready:\n${logs}`);
    }
    await Bun.sleep(20);
  }
  return {
    proc,
    url,
    buildPort,
    dataDir,
    ca,
    logs: () => logs,
    get: (path, init) => fetch(url + path, { ...init, tls: { ca } }),
    async stop() {
      proc.kill("SIGTERM");
      const code = await proc.exited;
      await Bun.sleep(20); // let the stderr reader drain
      return code;
    },
  };
}
