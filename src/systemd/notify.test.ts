/**
 * @module systemd/notify.test
 * sd_notify: message encoding, socket addresses (path and abstract), WATCHDOG_USEC/WATCHDOG_PID,
 * and real datagrams through a real AF_UNIX socket this test binds.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listenForNotifications } from "../../test/support/notify-socket.ts";
import {
  encodeNotifyMessage,
  notifySocketAddress,
  startWatchdog,
  systemdNotifier,
  watchdogIntervalMs,
} from "./notify.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-notify-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("encoding", () => {
  test("KEY=VALUE lines, a value's newlines flattened so it cannot forge another key", () => {
    expect(encodeNotifyMessage({ READY: 1, STATUS: "serving on :8443" })).toBe("READY=1\nSTATUS=serving on :8443");
    expect(encodeNotifyMessage({ STATUS: "a\nREADY=1" })).toBe("STATUS=a READY=1");
    expect(() => encodeNotifyMessage({ "ready=1\nX": 1 })).toThrow(/not an sd_notify key/);
  });

  test("a path address is NUL-terminated; an abstract one starts with NUL and is not", () => {
    const p = notifySocketAddress("/run/systemd/notify");
    expect([...p.addr.subarray(0, 2)]).toEqual([1, 0]);
    expect(Buffer.from(p.addr.subarray(2, 2 + 19)).toString()).toBe("/run/systemd/notify");
    expect(p.length).toBe(2 + 19 + 1);
    const a = notifySocketAddress("@sd-notify/1");
    expect(a.addr[2]).toBe(0);
    expect(Buffer.from(a.addr.subarray(3, 2 + 12)).toString()).toBe("sd-notify/1");
    expect(a.length).toBe(2 + 12);
    expect(() => notifySocketAddress("relative")).toThrow(/absolute path/);
    expect(() => notifySocketAddress(`/${"x".repeat(120)}`)).toThrow(/longer/);
  });

  test("the watchdog interval is half of WATCHDOG_USEC, only for the process WATCHDOG_PID names", () => {
    expect(watchdogIntervalMs({})).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "0" })).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000" })).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "42" }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "41" }, 42)).toBeNull();
  });
});

describe("sending through a real AF_UNIX datagram socket", () => {
  test("without a usable NOTIFY_SOCKET nothing is sent and nothing fails", () => {
    const n = systemdNotifier({});
    expect(n.enabled).toBe(false);
    expect(n.notify({ READY: 1 })).toBe(false);
    // An address it cannot use (relative, or systemd's vsock: form) disables it too, quietly.
    for (const NOTIFY_SOCKET of ["relative.sock", "vsock:2:1234"])
      expect(systemdNotifier({ NOTIFY_SOCKET }).enabled).toBe(false);
  });

  for (const [kind, address] of [
    ["a path", join(work, "notify.sock")],
    ["an abstract name", `@slipway-notify-test-${process.pid}`],
  ] as const) {
    test(`to ${kind}`, async () => {
      const listener = listenForNotifications(address);
      const n = systemdNotifier({ NOTIFY_SOCKET: address });
      try {
        expect(n.notify({ READY: 1, STATUS: "up" })).toBe(true);
        expect(n.notify({ STOPPING: 1 })).toBe(true);
        await listener.waitFor((t) => t === "STOPPING=1");
        expect(listener.messages.map((m) => m.text)).toEqual(["READY=1\nSTATUS=up", "STOPPING=1"]);
      } finally {
        n.close();
        listener.close();
      }
    });
  }

  test("a receiver that went away: the send fails quietly (no SIGPIPE, no throw)", () => {
    const n = systemdNotifier({ NOTIFY_SOCKET: join(work, "nobody.sock") });
    expect(n.notify({ READY: 1 })).toBe(false);
    n.close();
  });

  test("the watchdog pings while the probe passes and stops pinging when it fails", async () => {
    const address = join(work, "wd.sock");
    const listener = listenForNotifications(address);
    const n = systemdNotifier({ NOTIFY_SOCKET: address });
    let healthy = true;
    const failures: unknown[] = [];
    const wd = startWatchdog({
      notifier: n,
      intervalMs: 20,
      probe: () => {
        if (!healthy) throw new Error("database is gone");
      },
      onProbeFailed: (e) => failures.push(e),
    });
    try {
      await listener.waitFor(() => listener.messages.filter((m) => m.text === "WATCHDOG=1").length >= 3);
      healthy = false;
      await Bun.sleep(60);
      const count = listener.messages.length;
      await Bun.sleep(120);
      expect(listener.messages.length).toBe(count);
      expect(failures.length).toBeGreaterThan(0);
    } finally {
      wd.stop();
      n.close();
      listener.close();
    }
  });
});
