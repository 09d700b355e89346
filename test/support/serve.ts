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

// Ports are drawn below the kernel's ephemeral range (32768-60999 on Linux): the port 0 trick
// hands out an ephemeral port, which any outgoing connection on this busy machine may take in
// the moment between our probe closing it and the child binding it. Down here only another
// listener can, and `serve()` starts again on fresh ports when that happens.
const PORT_LOW = 20_000;
const PORT_HIGH = 32_000;

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** `n` distinct ports that were free a moment ago (see PORT_LOW): a child may still lose one; retry on EADDRINUSE. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n; tries++) {
    if (tries > 1000) throw new Error("no free port found");
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW));
    if (!ports.has(port) && (await probe(port))) ports.add(port);
  }
  return [...ports];
}

/** What a child that lost its port to someone else says (serve's preflight, Bun, Go, node). */
export const PORT_TAKEN = /already in use|EADDRINUSE|address in use|Is port \d+ in use/i;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runSlipway(
  bin: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CommandResult> {
  const proc = Bun.spawn([bin, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
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
  /** Picks each attempt's API and build ports (default freePorts): a test forces a collision with it. */
  pickPorts?: (n: number) => Promise<number[]>;
}

export async function serve(
  bin: string,
  dataDir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  opts: ServeOptions = {},
): Promise<Served> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await serveOnce(bin, dataDir, extraArgs, env, opts);
    } catch (e) {
      // Another process took a port between freePorts() and serve's bind: start again elsewhere.
      if (!(e instanceof PortTaken) || attempt >= 5) throw e;
    }
  }
}

class PortTaken extends Error {}

/** Every data dir a serve was started on in this process: the cleanup finds its builders by them. */
export const servedDataDirs = new Set<string>();

async function serveOnce(
  bin: string,
  dataDir: string,
  extraArgs: string[],
  env: Record<string, string>,
  opts: ServeOptions,
): Promise<Served> {
  const [port, buildPort] = (await (opts.pickPorts ?? freePorts)(2)) as [number, number];
  servedDataDirs.add(dataDir);
  const publicUrl = opts.publicHost
    ? ["--public-url", `${opts.http ? "http" : "https"}://${opts.publicHost}:${port}`]
    : [];
  const proc = Bun.spawn(
    [
      bin,
      "serve",
      "--data-dir",
      dataDir,
      "--listen",
      `${opts.listenHost ?? "127.0.0.1"}:${port}`,
      "--build-listen",
      `127.0.0.1:${buildPort}`,
      ...publicUrl,
      ...extraArgs,
    ],
    {
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env },
    },
  );
  let logs = "";
  const decoder = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of proc.stderr) logs += decoder.decode(chunk);
  })();
  const url = `${opts.http ? "http" : "https"}://localhost:${port}`;
  const deadline = Date.now() + 60_000;
  let ca = opts.trust ?? "";
  for (;;) {
    if (proc.exitCode !== null) {
      await drained;
      if (PORT_TAKEN.test(logs)) throw new PortTaken(logs);
      throw new Error(`serve exited with ${proc.exitCode}:\n${logs}`);
    }
    try {
      if (!opts.http) ca ||= readFileSync(join(dataDir, "ca.pem"), "utf8");
      const r = await fetch(`${url}/readyz`, opts.http ? {} : { tls: { ca } });
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`serve did not become ready in 60 s:\n${logs}`);
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
      await drained; // every line it wrote is in logs()
      return code;
    },
  };
}
