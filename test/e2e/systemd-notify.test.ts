/**
 * @module test/e2e/systemd-notify.test
 * `slipway serve` as systemd sees it (Type=notify, WatchdogSec): the compiled binary with
 * NOTIFY_SOCKET naming a real AF_UNIX datagram socket this test binds. READY=1 arrives only once
 * /readyz answers 200, WATCHDOG=1 arrives again and again (WATCHDOG_USEC small), and SIGTERM
 * brings STOPPING=1 with the drain's status and a stop-timeout extension. A WATCHDOG_PID naming
 * another process arms no watchdog. With stderr on a file that JOURNAL_STREAM names (as systemd
 * names the journal's stream), every log line carries its syslog priority; with a stale
 * JOURNAL_STREAM (stderr elsewhere) none does.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { listenForNotifications } from "../support/notify-socket.ts";
import { freePorts } from "../support/serve.ts";

let bin: string;
let work: string;
beforeAll(() => {
  bin = slipwayBinary();
  work = mkdtempSync(join(tmpdir(), "slipway-sdnotify-"));
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** serve with the given environment, not waited on (the test watches the socket and /readyz itself). */
async function startServe(dataDir: string, env: Record<string, string>, stderrFd?: number) {
  const [port, buildPort] = (await freePorts(2)) as [number, number];
  const proc = Bun.spawn(
    [bin, "serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--build-listen", `127.0.0.1:${buildPort}`],
    {
      stdout: "pipe",
      stderr: stderrFd ?? "pipe",
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env },
    },
  );
  let logs = "";
  if (proc.stderr instanceof ReadableStream)
    void (async () => {
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) logs += new TextDecoder().decode(chunk);
    })();
  const readyz = async () => {
    try {
      const ca = readFileSync(join(dataDir, "ca.pem"), "utf8");
      return (await fetch(`https://localhost:${port}/readyz`, { tls: { ca } })).status;
    } catch {
      return 0;
    }
  };
  return { proc, readyz, logs: () => logs };
}

test("READY=1 only once /readyz answers 200; WATCHDOG=1 repeatedly; STOPPING=1 and the drain's status on SIGTERM", async () => {
  const listener = listenForNotifications(join(work, "notify.sock"));
  const s = await startServe(join(work, "data"), {
    NOTIFY_SOCKET: listener.address,
    WATCHDOG_USEC: "200000", // a ping every 100 ms
  });
  try {
    const readyMsg = await listener.waitFor((t) => t.split("\n").includes("READY=1"), 60_000);
    expect(s.proc.exitCode).toBeNull();
    expect(readyMsg.text).toMatch(/^READY=1\nSTATUS=serving https:\/\//);
    // The moment READY=1 is read, the API already answers ready (systemd then starts what is After= it).
    expect(await s.readyz()).toBe(200);
    // Watchdog pings start with serving, not before.
    const firstPing = listener.messages.findIndex((m) => m.text === "WATCHDOG=1");
    expect(firstPing === -1 || firstPing > listener.messages.indexOf(readyMsg)).toBe(true);

    await listener.waitFor(() => listener.messages.filter((m) => m.text === "WATCHDOG=1").length >= 5, 10_000);

    s.proc.kill("SIGTERM");
    const stopping = await listener.waitFor((t) => t.split("\n").includes("STOPPING=1"), 30_000);
    expect(stopping.text).toMatch(/STATUS=draining 0 builds \(up to \d+ s left\)/);
    expect(stopping.text).toMatch(/EXTEND_TIMEOUT_USEC=\d+/);
    expect(await s.proc.exited).toBe(0);
    await listener.waitFor((t) => t.startsWith("STATUS=drained"));
  } finally {
    if (s.proc.exitCode === null) s.proc.kill("SIGKILL");
    listener.close();
  }
}, 120_000);

test("an abstract NOTIFY_SOCKET works; a WATCHDOG_PID naming another process arms no watchdog", async () => {
  const listener = listenForNotifications(`@slipway-sdnotify-${process.pid}`);
  const s = await startServe(join(work, "data2"), {
    NOTIFY_SOCKET: listener.address,
    WATCHDOG_USEC: "100000",
    WATCHDOG_PID: "1",
  });
  try {
    await listener.waitFor((t) => t.startsWith("READY=1"), 60_000); // an abstract socket works too
    await Bun.sleep(400);
    expect(listener.messages.filter((m) => m.text === "WATCHDOG=1")).toEqual([]);
    s.proc.kill("SIGTERM");
    expect(await s.proc.exited).toBe(0);
  } finally {
    if (s.proc.exitCode === null) s.proc.kill("SIGKILL");
    listener.close();
  }
}, 120_000);

test("stderr on the stream JOURNAL_STREAM names: each line starts with its syslog priority; a stale one: none", async () => {
  for (const [name, matching] of [
    ["journal", true],
    ["stale", false],
  ] as const) {
    const file = join(work, `${name}.log`);
    const fd = openSync(file, "w");
    const st = fstatSync(fd, { bigint: true });
    const stream = matching ? `${st.dev}:${st.ino}` : `${st.dev}:${st.ino + 1n}`;
    const listener = listenForNotifications(join(work, `${name}.sock`));
    const s = await startServe(
      join(work, `data-${name}`),
      { NOTIFY_SOCKET: listener.address, JOURNAL_STREAM: stream },
      fd,
    );
    try {
      await listener.waitFor((t) => t.startsWith("READY=1"), 60_000);
      s.proc.kill("SIGTERM");
      expect(await s.proc.exited).toBe(0);
    } finally {
      if (s.proc.exitCode === null) s.proc.kill("SIGKILL");
      listener.close();
      closeSync(fd);
    }
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) {
      if (matching) {
        expect(line).toMatch(/^<[3467]>\{/);
        const entry = JSON.parse(line.slice(3)) as { level: string };
        expect(line.slice(0, 3)).toBe({ debug: "<7>", info: "<6>", warn: "<4>", error: "<3>" }[entry.level]!);
      } else expect(line.startsWith("{")).toBe(true);
    }
  }
}, 180_000);
