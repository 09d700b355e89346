/**
 * @module log/logger.test
 * Covers createLogger: JSON line shape (time/level/msg/fields), level filtering, redaction of
 * secret-named fields and of secret-looking text (Slipway tokens, PEM private keys, Bearer
 * credentials) in messages and nested values, child() bindings, the one-line pretty format, and
 * the sd-daemon priority prefix for the journal.
 */
import { describe, expect, test } from "bun:test";
import { generateToken } from "../auth/token-format.ts";
import { createLogger, redact, redactText, type LoggerOptions } from "./logger.ts";

const FIXED = new Date("2030-01-02T03:04:05.678Z");

function capture(opts: LoggerOptions = {}) {
  const lines: string[] = [];
  const log = createLogger({ now: () => FIXED, write: (l) => lines.push(l), ...opts });
  const json = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines, json };
}

const PEM = [
  "-----BEGIN PRIVATE KEY-----",
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVcB/UNPxalR9zDYA",
  "jQIfjojUDiQuGnSJrFEEzZPT/92hRANCAASc7UJtgnF/abqWM60T3XNJEzBv5ez9",
  "-----END PRIVATE KEY-----",
].join("\n");

describe("JSON format", () => {
  test("one JSON object per line with time, level, msg and fields", () => {
    const { log, lines, json } = capture();
    log.info("server started", { port: 8443, tls: true, nested: { a: [1, 2] } });
    expect(lines.length).toBe(1);
    expect(lines[0]).not.toContain("\n");
    expect(json()[0]).toEqual({
      time: FIXED.toISOString(),
      level: "info",
      msg: "server started",
      port: 8443,
      tls: true,
      nested: { a: [1, 2] },
    });
  });

  test("the level is filtered: below the minimum nothing is written", () => {
    const { log, json } = capture({ level: "warn" });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(json().map((l) => [l.level, l.msg])).toEqual([
      ["warn", "w"],
      ["error", "e"],
    ]);
  });

  test("the default level is info", () => {
    const { log, json } = capture();
    log.debug("hidden");
    log.info("shown");
    expect(json().map((l) => l.msg)).toEqual(["shown"]);
  });

  test("debug level shows everything", () => {
    const { log, json } = capture({ level: "debug" });
    log.debug("d");
    log.info("i");
    expect(json().map((l) => l.level)).toEqual(["debug", "info"]);
  });

  test("errors are logged as name and message", () => {
    const { log, json } = capture();
    log.error("failed", { err: new TypeError("bad thing") });
    expect(json()[0]!.err).toEqual({ name: "TypeError", message: "bad thing" });
  });
});

describe("redaction", () => {
  test("secret-named fields are replaced, at any depth", () => {
    const { log, json } = capture();
    log.info("request", {
      token: "abc",
      password: "hunter2",
      authorization: "whatever",
      secret: "s3",
      private_key: "k",
      cookie: "c=1",
      user: "alice",
      req: { headers: { Authorization: "x", "x-api-token": "y", accept: "*/*" } },
    });
    const l = json()[0]!;
    for (const k of ["token", "password", "authorization", "secret", "private_key", "cookie"])
      expect(l[k]).toBe("[redacted]");
    expect(l.user).toBe("alice");
    expect(l.req).toEqual({ headers: { Authorization: "[redacted]", "x-api-token": "[redacted]", accept: "*/*" } });
  });

  test("a Slipway token is masked inside messages and nested values of any field", () => {
    const { log, lines } = capture();
    const tokens = [generateToken("user"), generateToken("org"), generateToken("build")];
    log.warn(`rejected token ${tokens[0]} from peer`, {
      url: `https://h/x?t=${tokens[1]}`,
      list: ["a", { deep: { deeper: `value=${tokens[2]};` } }],
    });
    const line = lines[0]!;
    for (const t of tokens) {
      expect(line).not.toContain(t);
      expect(line).not.toContain(t.slice(6));
    }
    const l = JSON.parse(line);
    expect(l.msg).toBe("rejected token slw_[redacted] from peer");
    expect(l.url).toBe("https://h/x?t=slw_[redacted]");
    expect(l.list[1].deep.deeper).toBe("value=slw_[redacted];");
  });

  test("PEM private keys and Bearer credentials are masked; certificates are not", () => {
    const { log, lines } = capture();
    const cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    log.info(`loaded ${PEM}`, {
      header: "Bearer abcdefghijklmnop.qrstuv",
      value: `key: ${PEM.replace(/PRIVATE KEY/g, "EC PRIVATE KEY")}`,
      cert,
    });
    const l = JSON.parse(lines[0]!);
    expect(l.msg).toBe("loaded [redacted private key]");
    expect(l.header).toBe("Bearer [redacted]");
    expect(l.value).toBe("key: [redacted private key]");
    expect(l.cert).toBe(cert);
    expect(lines[0]).not.toContain("MIGHAgEAMBMG");
    expect(lines[0]).not.toContain("abcdefghijklmnop");
  });

  test("redactText leaves ordinary text alone", () => {
    for (const s of ["build bld_abc finished in 3 s", "slw_u_short", "Bearer", "token expired"])
      expect(redactText(s)).toBe(s);
  });

  test("redact does not change its input and keeps null secret fields as null", () => {
    const input = { token: "t", nested: { password: null, ok: 1 } };
    expect(redact(input)).toEqual({ token: "[redacted]", nested: { password: null, ok: 1 } });
    expect(input.token).toBe("t");
  });
});

describe("child", () => {
  test("binds fields to every line; call fields win; children nest", () => {
    const { log, json } = capture();
    const child = log.child({ component: "pki", build: "bld_1" });
    child.info("a");
    child.info("b", { build: "bld_2" });
    child.child({ step: 3 }).info("c");
    log.info("d");
    const l = json();
    expect(l[0]).toMatchObject({ msg: "a", component: "pki", build: "bld_1" });
    expect(l[1]).toMatchObject({ msg: "b", component: "pki", build: "bld_2" });
    expect(l[2]).toMatchObject({ msg: "c", component: "pki", build: "bld_1", step: 3 });
    expect(l[3]).toEqual({ time: FIXED.toISOString(), level: "info", msg: "d" });
  });

  test("bound fields are redacted too, and the child keeps the level", () => {
    const { log, json } = capture({ level: "warn" });
    const child = log.child({ token: "abc" });
    child.info("dropped");
    child.warn("kept");
    expect(json()).toEqual([{ time: FIXED.toISOString(), level: "warn", msg: "kept", token: "[redacted]" }]);
  });
});

describe("pretty format", () => {
  test("one line: time of day, level, message, key=value fields", () => {
    const { log, lines } = capture({ format: "pretty" });
    log.warn("disk low", { free: "1 GB", pct: 3, obj: { a: 1 } });
    expect(lines).toEqual(['03:04:05.678 WARN  disk low  free=1 GB pct=3 obj={"a":1}']);
    expect(lines[0]).not.toContain("\n");
  });

  test("redacts like JSON and prints no field part when there are no fields", () => {
    const { log, lines } = capture({ format: "pretty" });
    const t = generateToken("user");
    log.info(`got ${t}`);
    log.error("x", { password: "p" });
    expect(lines).toEqual(["03:04:05.678 INFO  got slw_[redacted]", "03:04:05.678 ERROR x  password=[redacted]"]);
  });
});

describe("hardening", () => {
  const capture = (format: "json" | "pretty" = "json") => {
    const lines: string[] = [];
    return { lines, log: createLogger({ format, write: (l) => lines.push(l) }) };
  };

  test("a field cannot pose as the line's level or message", () => {
    const { lines, log } = capture();
    log.info("real", { level: "error", msg: "fake", time: "then" });
    const o = JSON.parse(lines[0]!);
    expect(o).toMatchObject({
      level: "info",
      msg: "real",
      field_level: "error",
      field_msg: "fake",
      field_time: "then",
    });
    expect(o.time).not.toBe("then");
  });

  test("camelCase secret names are redacted; names of where secrets are, are not", () => {
    const { lines, log } = capture();
    log.info("x", {
      apiToken: "a",
      clientSecret: "b",
      masterKey: "c",
      accessToken: "d",
      admin_token_file: "/data/initial-admin-token",
    });
    expect(JSON.parse(lines[0]!)).toMatchObject({
      apiToken: "[redacted]",
      clientSecret: "[redacted]",
      masterKey: "[redacted]",
      accessToken: "[redacted]",
      admin_token_file: "/data/initial-admin-token",
    });
  });

  test("a token glued to other text is still masked", () => {
    const { lines, log } = capture();
    const token = `slw_u_${"Ab1".repeat(11)}`;
    log.info(`file_${token}`, { path: `x${token}y` });
    expect(lines[0]).not.toContain(token);
  });

  test("pretty output stays on one line", () => {
    const { lines, log } = capture("pretty");
    log.info("first\nsecond", { note: "a\nb" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("\n");
  });
});

describe("journald priorities", () => {
  test("with journalPriority every line starts with its syslog priority and stays JSON after it", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", journalPriority: true, write: (l) => lines.push(l), now: () => FIXED });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e", { n: 1 });
    expect(lines.map((l) => l.slice(0, 3))).toEqual(["<7>", "<6>", "<4>", "<3>"]);
    expect(JSON.parse(lines[3]!.slice(3))).toEqual({ time: FIXED.toISOString(), level: "error", msg: "e", n: 1 });
  });

  test("a child logger keeps the prefix; the pretty format gets it too; without the option there is none", () => {
    const lines: string[] = [];
    createLogger({ journalPriority: true, format: "pretty", write: (l) => lines.push(l) })
      .child({ c: 1 })
      .warn("w");
    createLogger({ write: (l) => lines.push(l) }).warn("w");
    expect(lines[0]).toMatch(/^<4>\d\d:\d\d/);
    expect(lines[1]!.startsWith("{")).toBe(true);
  });
});
