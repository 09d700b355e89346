/**
 * @module test/e2e/cli-errors
 * Bad input to the compiled binary: each a clear one-line error, exit code 2 for usage and
 * configuration mistakes, and nothing created on disk.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { freePort, freePorts, runSlipway, serve } from "../support/serve.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { COMMANDS } from "../../src/cli/index.ts";

let bin: string;
let work: string;

beforeAll(() => {
  bin = slipwayBinary();
  work = mkdtempSync(join(tmpdir(), "slipway-cli-"));
});
afterAll(async () => {
  await removeBuildersOfServed(); // the lock test kills a serve with -9: its network policy stays
  rmSync(work, { recursive: true, force: true });
});

/** Runs `serve` expecting it to refuse; returns stderr. Ports are free unless a case says so. */
async function refusedServe(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string; dataDir: string }> {
  const dataDir = join(work, `data-${crypto.randomUUID()}`);
  const [p1, p2] = (await freePorts(2)) as [number, number];
  const r = await runSlipway(
    bin,
    ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${p1}`, "--build-listen", `127.0.0.1:${p2}`, ...args],
    env,
  );
  return { code: r.code, stderr: r.stderr, dataDir };
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(stderr).not.toContain("    at "); // no stack trace
  return lines[0]!;
}

describe("configuration errors exit 2 with one line and create nothing", () => {
  const config = (text: string) => {
    const f = join(work, `c-${crypto.randomUUID()}.toml`);
    writeFileSync(f, text);
    return f;
  };

  test("invalid TOML names the file, line and column", async () => {
    const f = config('[server]\nlisten = "0.0.0.0:1\n');
    const r = await refusedServe(["--config", f]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`${f} is not valid TOML: line 2, column \\d+`));
    expect(existsSync(r.dataDir)).toBe(false);
  });

  test("an unknown key names it and lists the known ones", async () => {
    const r = await refusedServe(["--config", config("[server]\nlisten_port = 1\n")]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toContain("unknown key server.listen_port");
    expect(r.stderr).toContain("known keys in [server]: listen, build_listen");
    expect(existsSync(r.dataDir)).toBe(false);
  });

  test("a wrong type names the key, the value, the source and what is allowed", async () => {
    const f = config('[server]\nmax_body_bytes = "lots"\n');
    const r = await refusedServe(["--config", f]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toContain(
      `server.max_body_bytes = "lots" (from ${f}) is invalid: Invalid input: expected number`,
    );
    const env = await refusedServe([], { SLIPWAY_LOG_LEVEL: "chatty" });
    expect(env.code).toBe(2);
    expect(oneLine(env.stderr)).toContain('log.level = "chatty" (from SLIPWAY_LOG_LEVEL) is invalid');
  });

  test("an env variable for an unknown key is caught", async () => {
    const r = await refusedServe([], { SLIPWAY_SERVER_LISTNE: "x" });
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toContain("SLIPWAY_SERVER_LISTNE names no setting");
  });

  test("a port in use", async () => {
    const busy: Server = createServer();
    await new Promise<void>((res) => busy.listen(0, "127.0.0.1", res));
    const port = (busy.address() as { port: number }).port;
    try {
      const dataDir = join(work, "busy-data");
      const r = await runSlipway(bin, [
        "serve",
        "--data-dir",
        dataDir,
        "--listen",
        `127.0.0.1:${port}`,
        "--build-listen",
        `127.0.0.1:${await freePort()}`,
      ]);
      expect(r.code).toBe(2);
      expect(oneLine(r.stderr)).toContain(`cannot listen on 127.0.0.1:${port} (API, --listen): already in use`);
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      busy.close();
    }
  });

  test("an unwritable data dir", async () => {
    const file = join(work, "a-file");
    writeFileSync(file, "");
    const r = await runSlipway(bin, [
      "serve",
      "--data-dir",
      join(file, "data"),
      "--listen",
      `127.0.0.1:${await freePort()}`,
      "--build-listen",
      `127.0.0.1:${await freePort()}`,
    ]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toContain(`data dir ${join(file, "data")}`);
    const proc = await runSlipway(bin, [
      "serve",
      "--data-dir",
      "/proc/slipway-data",
      "--listen",
      `127.0.0.1:${await freePort()}`,
      "--build-listen",
      `127.0.0.1:${await freePort()}`,
    ]);
    expect(proc.code).toBe(2);
    expect(oneLine(proc.stderr)).toContain("data dir /proc/slipway-data");
  });

  test("a data dir another serve is using: refused with its pid, the first one unharmed; free again once it is killed", async () => {
    const dataDir = join(work, "shared-data");
    const first = await serve(bin, dataDir, ["--set", "volumes.encryption=none"]);
    try {
      const [p1, p2] = (await freePorts(2)) as [number, number];
      const second = await runSlipway(bin, [
        "serve",
        "--data-dir",
        dataDir,
        "--listen",
        `127.0.0.1:${p1}`,
        "--build-listen",
        `127.0.0.1:${p2}`,
      ]);
      expect(second.code).toBe(2);
      expect(oneLine(second.stderr)).toBe(
        `slipway: data dir ${dataDir} is in use by another slipway serve (pid ${first.proc.pid}): stop it first, or give this one another --data-dir`,
      );
      expect((await first.get("/livez")).status).toBe(200);
    } finally {
      first.proc.kill(9); // no clean stop: the kernel drops the lock with the process
      await first.proc.exited;
    }
    const again = await serve(bin, dataDir, ["--set", "volumes.encryption=none"]);
    expect((await again.get("/livez")).status).toBe(200);
    await again.stop();
  });

  test("an invalid listen address and a lone TLS file", async () => {
    const r = await runSlipway(bin, ["serve", "--data-dir", join(work, "x"), "--listen", "nowhere"]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toContain('server.listen = "nowhere" (from --listen) is invalid: expected host:port');
    const t = await refusedServe(["--set", "server.tls_cert_file=/etc/hostname"]);
    expect(t.code).toBe(2);
    expect(oneLine(t.stderr)).toContain("must be set together");
  });
});

describe("usage", () => {
  test("unknown command and unknown flag exit 2", async () => {
    const a = await runSlipway(bin, ["frobnicate"]);
    expect(a.code).toBe(2);
    expect(oneLine(a.stderr)).toContain("unknown command 'frobnicate'");
    const b = await runSlipway(bin, ["serve", "--lisen", "x"]);
    expect(b.code).toBe(2);
    expect(oneLine(b.stderr)).toContain("serve: Unknown option '--lisen'");
    const c = await runSlipway(bin, ["backup"]);
    expect(c.code).toBe(2);
    expect(oneLine(c.stderr)).toContain("backup needs --out FILE");
  });

  test("--help works on every command and lists the global options", async () => {
    const top = await runSlipway(bin, ["--help"]);
    expect(top.code).toBe(0);
    for (const cmd of COMMANDS.map((c) => c.name)) {
      expect(top.stdout).toContain(`  ${cmd}`);
      const h = await runSlipway(bin, [cmd, "--help"]);
      expect(h.code).toBe(0);
      expect(h.stdout).toContain(`usage: slipway ${cmd}`);
      for (const g of ["--server", "--token", "--cacert", "--json"]) expect(h.stdout).toContain(g);
    }
    const serveHelp = (await runSlipway(bin, ["serve", "--help"])).stdout;
    for (const f of ["--config", "--data-dir", "--listen", "--build-listen", "--public-url", "--insecure-http"])
      expect(serveHelp).toContain(f);
  });

  test("client globals are validated", async () => {
    const r = await runSlipway(bin, ["version", "--server", "not a url"]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toContain("--server/SLIPWAY_SERVER");
  });

  test("operations on a missing database fail with exit 1", async () => {
    const m = await runSlipway(bin, ["migrate", "--data-dir", join(work, "nothing")]);
    expect(m.code).toBe(1);
    expect(oneLine(m.stderr)).toContain("no database at");
    const b = await runSlipway(bin, ["backup", "--data-dir", join(work, "nothing"), "--out", join(work, "b.db")]);
    expect(b.code).toBe(1);
  });
});

describe("unexpected errors are one line and exit 1, never a stack or bundled source", () => {
  for (const how of ["throw", "callback", "rejection"]) {
    test(`an error ${how === "throw" ? "thrown by a command" : how === "callback" ? "thrown in a callback" : "in a promise nobody awaits"}`, async () => {
      const r = await runSlipway(bin, ["__fail", "--how", how]);
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toBe(
        "slipway: internal error: Cannot read properties of undefined (reading 'selftest')",
      );
      expect(r.stderr).not.toMatch(/\bfunction\b|=>|\bconst\b|\^/); // no code excerpt
      expect(r.stdout).toBe("");
    });
  }
});
