/**
 * @module config/listen.test
 * Covers parseListenAddress (host:port, [v6]:port, :port, bare port, rejected forms),
 * formatListenAddress round trips and isLoopbackAddress.
 */
import { describe, expect, test } from "bun:test";
import { formatListenAddress, isLoopbackAddress, parseListenAddress } from "./listen.ts";

describe("parseListenAddress", () => {
  const accepted: [string, { hostname: string; port: number }][] = [
    ["0.0.0.0:8443", { hostname: "0.0.0.0", port: 8443 }],
    ["[::]:8443", { hostname: "::", port: 8443 }],
    ["[::1]:9000", { hostname: "::1", port: 9000 }],
    [":8443", { hostname: "0.0.0.0", port: 8443 }],
    ["localhost:1", { hostname: "localhost", port: 1 }],
    ["127.0.0.1:65535", { hostname: "127.0.0.1", port: 65535 }],
  ];
  for (const [text, expected] of accepted) {
    test(`accepts ${JSON.stringify(text)}`, () => {
      expect(parseListenAddress(text)).toEqual(expected);
    });
  }

  // A bare port means "all interfaces", exactly like ":8443" (see the module comment of listen.ts).
  test('accepts a bare port "8443" as all interfaces', () => {
    expect(parseListenAddress("8443")).toEqual({ hostname: "0.0.0.0", port: 8443 });
  });

  const rejected = [
    "x",
    "1.2.3.4:0",
    ":70000",
    "a:b:c",
    "",
    "70000",
    "host:",
    "[::1]",
    "[zz]:80",
    "host:-1",
    "host:123456",
  ];
  for (const text of rejected) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      expect(parseListenAddress(text)).toBeNull();
    });
  }
});

describe("formatListenAddress", () => {
  test("brackets IPv6 hosts and round-trips through parse", () => {
    expect(formatListenAddress({ hostname: "::", port: 8443 })).toBe("[::]:8443");
    expect(formatListenAddress({ hostname: "0.0.0.0", port: 1 })).toBe("0.0.0.0:1");
    for (const text of ["[::1]:9000", "localhost:1", "10.0.0.1:443"]) {
      expect(formatListenAddress(parseListenAddress(text)!)).toBe(text);
    }
  });
});

describe("isLoopbackAddress", () => {
  test("recognises loopback in v4, v6 and v4-mapped form", () => {
    for (const ip of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "localhost"])
      expect(isLoopbackAddress(ip)).toBe(true);
    for (const ip of ["0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1", "128.0.0.1"])
      expect(isLoopbackAddress(ip)).toBe(false);
  });
});
