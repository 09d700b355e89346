/**
 * @module egress/targets.test
 * Target parsing and the wildcard rule: `*.example.com` matches every name strictly below
 * example.com at any depth, never the apex.
 */
import { describe, expect, test } from "bun:test";
import { cidrContains, parsePorts, parseTarget, targetText, wildcardMatches } from "./targets.ts";

describe("targets", () => {
  test("addresses and CIDRs are normalised", () => {
    expect(parseTarget("203.0.113.7")).toEqual({ kind: "cidr", family: 4, cidr: "203.0.113.7/32" });
    expect(parseTarget("203.0.113.77/24")).toEqual({ kind: "cidr", family: 4, cidr: "203.0.113.0/24" });
    expect(parseTarget("2001:DB8::1:2/48")).toEqual({ kind: "cidr", family: 6, cidr: "2001:db8::/48" });
    expect(parseTarget("fd77::11")).toEqual({ kind: "cidr", family: 6, cidr: "fd77::11/128" });
    expect(typeof parseTarget("10.0.0.0/33")).toBe("string");
    expect(typeof parseTarget("2001:db8::/129")).toBe("string");
  });

  test("an IPv4-mapped IPv6 address is its IPv4 address (the kernel never sees it as IPv6)", () => {
    expect(parseTarget("::ffff:10.0.0.1")).toEqual({ kind: "cidr", family: 4, cidr: "10.0.0.1/32" });
    expect(parseTarget("::FFFF:a00:1")).toEqual({ kind: "cidr", family: 4, cidr: "10.0.0.1/32" });
    expect(parseTarget("::ffff:10.0.0.77/120")).toEqual({ kind: "cidr", family: 4, cidr: "10.0.0.0/24" });
    expect(parseTarget("0:0:0:0:0:ffff:192.0.2.9/128")).toEqual({ kind: "cidr", family: 4, cidr: "192.0.2.9/32" });
    expect(parseTarget("::ffff:0:0/80")).toEqual(expect.stringContaining("/96 or longer"));
    // Not mapped: the IPv4-compatible and translated forms stay IPv6.
    expect(parseTarget("64:ff9b::10.0.0.1")).toEqual({ kind: "cidr", family: 6, cidr: "64:ff9b::a00:1/128" });
  });

  test("hostnames and wildcards", () => {
    expect(parseTarget("Registry.Example.com.")).toEqual({ kind: "host", name: "registry.example.com" });
    expect(targetText(parseTarget("*.Example.com") as never)).toBe("*.example.com");
    for (const bad of [
      "*",
      "*.com",
      "a.*.example.com",
      "exa*mple.com",
      "-bad.example.com",
      "a..b",
      "1.2.3",
      "example.123",
    ])
      expect(typeof parseTarget(bad)).toBe("string");
  });

  test("a wildcard matches names strictly below its domain, at any depth, and not the apex", () => {
    expect(wildcardMatches("example.com", "a.example.com")).toBe(true);
    expect(wildcardMatches("example.com", "a.b.example.com")).toBe(true);
    expect(wildcardMatches("example.com", "A.EXAMPLE.COM.")).toBe(true);
    expect(wildcardMatches("example.com", "example.com")).toBe(false);
    expect(wildcardMatches("example.com", "badexample.com")).toBe(false);
    expect(wildcardMatches("example.com", "example.com.evil.test")).toBe(false);
  });

  test("ports", () => {
    expect(parsePorts("443, 8000-8100")).toEqual([
      [443, 443],
      [8000, 8100],
    ]);
    for (const bad of ["0", "65536", "90-80", "http"]) expect(typeof parsePorts(bad)).toBe("string");
  });

  test("CIDR containment", () => {
    expect(cidrContains("10.77.0.8/29", "10.77.0.12")).toBe(true);
    expect(cidrContains("10.77.0.8/29", "10.77.0.16")).toBe(false);
    expect(cidrContains("fd77::10/124", "fd77::1f")).toBe(true);
    expect(cidrContains("fd77::10/124", "10.0.0.1")).toBe(false);
  });
});
