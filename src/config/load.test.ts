/**
 * @module config/load.test
 * Covers loadConfig with the real schema and default paths: embedded defaults, precedence
 * (file < SLIPWAY_<SECTION>_<KEY> env < overrides), the wording of every ConfigError (bad TOML,
 * unknown section/key, wrong types, env typos, bad env values, missing explicit file, TLS pair),
 * which env variables are ignored, and the system/user default locations of config and data.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { loadConfig, type LoadConfigInput } from "./load.ts";
import { defaultConfigFile, defaultDataDir, isSystemMode } from "./paths.ts";

let dir: string;
let home: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "slipway-config-"));
  home = join(dir, "home");
  mkdirSync(home);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A non-root user whose HOME is a fresh temp dir: no config file unless a test writes one. */
function userInput(
  extra: Partial<LoadConfigInput> = {},
  env: Record<string, string | undefined> = {},
): LoadConfigInput {
  return { uid: 1000, env: { HOME: home, ...env }, systemConfigDir: join(dir, "no-such-etc"), ...extra };
}

/** Writes a TOML file and returns its path. */
function toml(text: string, name = "slipway.toml"): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Runs `fn`, expects a ConfigError and returns its message. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

describe("defaults", () => {
  test("with no file, env or flags, every key has its embedded default", () => {
    const r = loadConfig(userInput());
    expect(r.configFile).toBeNull();
    expect(r.systemMode).toBe(false);
    expect(r.config.server).toEqual({
      listen: "0.0.0.0:8443",
      build_listen: "0.0.0.0:8444",
      insecure_http: false,
      max_body_bytes: 1024 * 1024,
      shutdown_timeout_seconds: 30,
      drain_seconds: 600,
      hsts_max_age_seconds: 31_536_000,
    });
    expect(r.config.database.busy_timeout_ms).toBe(5000);
    expect(r.config.log).toEqual({ level: "info", format: "auto" });
    expect(r.config.data.dir).toBeUndefined();
    expect(r.config.secrets.master_key_file).toBeUndefined();
    expect(r.dataDir).toBe(join(home, ".local", "share", "slipway"));
  });
});

describe("precedence", () => {
  test("file < env < overrides, key by key", () => {
    const file = toml(`
[server]
listen = "127.0.0.1:1000"
build_listen = "127.0.0.1:1001"
max_body_bytes = 4096
[log]
level = "debug"
`);
    const r = loadConfig(
      userInput(
        {
          configFile: file,
          overrides: [{ key: "server.listen", value: "127.0.0.1:3000", source: "--listen" }],
        },
        { SLIPWAY_SERVER_LISTEN: "127.0.0.1:2000", SLIPWAY_SERVER_BUILD_LISTEN: "127.0.0.1:2001" },
      ),
    );
    expect(r.configFile).toBe(file);
    expect(r.config.server.listen).toBe("127.0.0.1:3000"); // flag beats env and file
    expect(r.config.server.build_listen).toBe("127.0.0.1:2001"); // env beats file
    expect(r.config.server.max_body_bytes).toBe(4096); // file beats default
    expect(r.config.log.level).toBe("debug");
    expect(r.config.server.shutdown_timeout_seconds).toBe(30); // untouched default
  });

  test("the default config file location is read without an explicit configFile", () => {
    const cfgDir = join(home, ".config", "slipway");
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(join(cfgDir, "slipway.toml"), `[server]\nlisten = ":9999"\n`);
    const r = loadConfig(userInput());
    expect(r.configFile).toBe(join(cfgDir, "slipway.toml"));
    expect(r.config.server.listen).toBe(":9999");
  });

  test("SLIPWAY_CONFIG names the config file", () => {
    const file = toml(`[server]\nlisten = ":7777"\n`, "other.toml");
    const r = loadConfig(userInput({}, { SLIPWAY_CONFIG: file }));
    expect(r.configFile).toBe(file);
    expect(r.config.server.listen).toBe(":7777");
  });

  test("overrides are applied in order: the last one wins", () => {
    const r = loadConfig(
      userInput({
        overrides: [
          { key: "log.level", value: "warn", source: "--set" },
          { key: "log.level", value: "error", source: "--log-level" },
        ],
      }),
    );
    expect(r.config.log.level).toBe("error");
  });
});

describe("file errors", () => {
  test("invalid TOML names the file, the line and the column", () => {
    const file = toml(`[server]\nlisten = "a:1"\nmax_body_bytes = = 3\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain(file);
    expect(msg).toContain("not valid TOML");
    expect(msg).toMatch(/line 3, column \d+/);
  });

  test("an unknown section is named, with the known sections", () => {
    const file = toml(`[sever]\nlisten = ":1"\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain("[sever]");
    expect(msg).toContain(file);
    for (const s of ["server", "data", "secrets", "database", "metrics", "log"]) expect(msg).toContain(s);
  });

  test("an unknown key is named, with the known keys of its section", () => {
    const file = toml(`[server]\nlistn = ":1"\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain("server.listn");
    expect(msg).toContain(file);
    for (const k of ["listen", "build_listen", "insecure_http", "max_body_bytes", "tls_cert_file"])
      expect(msg).toContain(k);
  });

  test("a top-level key that is not a table is rejected", () => {
    const file = toml(`server = 3\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain("server");
    expect(msg).toContain("must be a table");
  });

  test("a string where a number belongs names key, value and file", () => {
    const file = toml(`[server]\nmax_body_bytes = "big"\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain("server.max_body_bytes");
    expect(msg).toContain(`"big"`);
    expect(msg).toContain(`from ${file}`);
  });

  test("a string where a boolean belongs names key, value and file", () => {
    const file = toml(`[server]\ninsecure_http = "yes"\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain("server.insecure_http");
    expect(msg).toContain(`"yes"`);
    expect(msg).toContain(`from ${file}`);
  });

  test("a number out of range and an invalid listen address are rejected", () => {
    const small = toml(`[server]\nmax_body_bytes = 10\n`, "small.toml");
    expect(configError(() => loadConfig(userInput({ configFile: small })))).toContain("server.max_body_bytes = 10");
    const badListen = toml(`[server]\nlisten = "nowhere"\n`, "listen.toml");
    const msg = configError(() => loadConfig(userInput({ configFile: badListen })));
    expect(msg).toContain(`server.listen = "nowhere"`);
    expect(msg).toContain("port from 1 to 65535");
  });

  test("an explicit configFile that does not exist is an error, not silently defaults", () => {
    const missing = join(dir, "missing.toml");
    const msg = configError(() => loadConfig(userInput({ configFile: missing })));
    expect(msg).toContain(missing);
    expect(msg).toContain("does not exist");
    expect(configError(() => loadConfig(userInput({}, { SLIPWAY_CONFIG: missing })))).toContain(missing);
  });

  test("tls_cert_file without tls_key_file is an error naming the missing key", () => {
    const file = toml(`[server]\ntls_cert_file = "/etc/ssl/cert.pem"\n`);
    const msg = configError(() => loadConfig(userInput({ configFile: file })));
    expect(msg).toContain("server.tls_key_file");
    expect(msg).toContain("must be set together");
  });

  test("tls_key_file without tls_cert_file is an error too; both together are fine", () => {
    expect(configError(() => loadConfig(userInput({}, { SLIPWAY_SERVER_TLS_KEY_FILE: "/k.pem" })))).toContain(
      "server.tls_cert_file",
    );
    const r = loadConfig(
      userInput({}, { SLIPWAY_SERVER_TLS_KEY_FILE: "/k.pem", SLIPWAY_SERVER_TLS_CERT_FILE: "/c.pem" }),
    );
    expect(r.config.server.tls_cert_file).toBe("/c.pem");
    expect(r.config.server.tls_key_file).toBe("/k.pem");
  });
});

describe("environment", () => {
  test("a typo in a known section is an error listing the known env names", () => {
    const msg = configError(() => loadConfig(userInput({}, { SLIPWAY_SERVER_LISTN: ":1" })));
    expect(msg).toContain("SLIPWAY_SERVER_LISTN");
    expect(msg).toContain("SLIPWAY_SERVER_LISTEN");
    expect(msg).toContain("SLIPWAY_SERVER_MAX_BODY_BYTES");
  });

  test("booleans accept true/false/1/0, numbers are parsed", () => {
    for (const [text, expected] of [
      ["true", true],
      ["1", true],
      ["FALSE", false],
      ["0", false],
    ] as const) {
      const r = loadConfig(userInput({}, { SLIPWAY_SERVER_INSECURE_HTTP: text }));
      expect(r.config.server.insecure_http).toBe(expected);
    }
    const r = loadConfig(
      userInput({}, { SLIPWAY_SERVER_MAX_BODY_BYTES: "2048", SLIPWAY_DATABASE_BUSY_TIMEOUT_MS: "0" }),
    );
    expect(r.config.server.max_body_bytes).toBe(2048);
    expect(r.config.database.busy_timeout_ms).toBe(0);
  });

  test("bad env values are rejected with the variable's name", () => {
    let msg = configError(() => loadConfig(userInput({}, { SLIPWAY_SERVER_INSECURE_HTTP: "maybe" })));
    expect(msg).toContain("SLIPWAY_SERVER_INSECURE_HTTP");
    expect(msg).toContain(`"maybe"`);
    msg = configError(() => loadConfig(userInput({}, { SLIPWAY_SERVER_MAX_BODY_BYTES: "big" })));
    expect(msg).toContain("SLIPWAY_SERVER_MAX_BODY_BYTES");
    expect(msg).toContain("expected a number");
    msg = configError(() => loadConfig(userInput({}, { SLIPWAY_SERVER_MAX_BODY_BYTES: "1.5" })));
    expect(msg).toContain("server.max_body_bytes");
    expect(msg).toContain("SLIPWAY_SERVER_MAX_BODY_BYTES");
    msg = configError(() => loadConfig(userInput({}, { SLIPWAY_LOG_LEVEL: "loud" })));
    expect(msg).toContain(`log.level = "loud"`);
    expect(msg).toContain("SLIPWAY_LOG_LEVEL");
  });

  test("unrelated SLIPWAY_* variables and the client's variables are ignored", () => {
    const r = loadConfig(
      userInput(
        {},
        {
          SLIPWAY_REQUIRE_INTEGRATION: "1",
          SLIPWAY_SERVER: "https://example.test",
          SLIPWAY_TOKEN: "slw_u_xxxxxxxx",
          SLIPWAY_CACERT: "/tmp/ca.pem",
          SLIPWAY_DEBUG_WHATEVER: "x",
          OTHER_SERVER_LISTEN: "nonsense",
        },
      ),
    );
    expect(r.config.server.listen).toBe("0.0.0.0:8443");
  });

  test("an unknown override key is an error listing all known keys", () => {
    const msg = configError(() =>
      loadConfig(userInput({ overrides: [{ key: "server.nope", value: 1, source: "--set" }] })),
    );
    expect(msg).toContain("server.nope");
    expect(msg).toContain("--set");
    expect(msg).toContain("database.busy_timeout_ms");
  });
});

describe("default locations", () => {
  test("root with the system config dir present: /var/lib/slipway and <etc>/slipway.toml", () => {
    const etc = join(dir, "etc-slipway");
    mkdirSync(etc);
    const input: LoadConfigInput = { uid: 0, env: { HOME: home }, systemConfigDir: etc };
    expect(isSystemMode(input)).toBe(true);
    expect(defaultConfigFile(input)).toBe(join(etc, "slipway.toml"));
    expect(loadConfig(input).dataDir).toBe("/var/lib/slipway");
    writeFileSync(join(etc, "slipway.toml"), `[log]\nformat = "json"\n`);
    const r = loadConfig(input);
    expect(r.systemMode).toBe(true);
    expect(r.configFile).toBe(join(etc, "slipway.toml"));
    expect(r.config.log.format).toBe("json");
  });

  test("root without the system config dir is user mode", () => {
    const input: LoadConfigInput = { uid: 0, env: { HOME: home }, systemConfigDir: join(dir, "absent") };
    expect(isSystemMode(input)).toBe(false);
    expect(loadConfig(input).dataDir).toBe(join(home, ".local", "share", "slipway"));
  });

  test("non-root with XDG variables uses them", () => {
    const etc = join(dir, "etc-slipway");
    mkdirSync(etc); // exists, but we are not root
    const xdgData = join(dir, "xdg-data");
    const xdgConfig = join(dir, "xdg-config");
    const input: LoadConfigInput = {
      uid: 1000,
      env: { HOME: home, XDG_DATA_HOME: xdgData, XDG_CONFIG_HOME: xdgConfig },
      systemConfigDir: etc,
    };
    expect(defaultConfigFile(input)).toBe(join(xdgConfig, "slipway", "slipway.toml"));
    expect(defaultDataDir(input)).toBe(join(xdgData, "slipway"));
    const r = loadConfig(input);
    expect(r.systemMode).toBe(false);
    expect(r.dataDir).toBe(join(xdgData, "slipway"));
  });

  test("non-root without XDG variables falls back to $HOME", () => {
    const input = userInput();
    expect(defaultConfigFile(input)).toBe(join(home, ".config", "slipway", "slipway.toml"));
    expect(defaultDataDir(input)).toBe(join(home, ".local", "share", "slipway"));
  });

  test("a relative data dir is made absolute against the working directory (Docker binds only absolute paths)", () => {
    const r = loadConfig(userInput({ overrides: [{ key: "data.dir", value: "./data", source: "--data-dir" }] }));
    expect(r.dataDir).toBe(join(process.cwd(), "data"));
  });

  test("data.dir from the file, env or an override wins over the default", () => {
    const etc = join(dir, "etc-slipway");
    mkdirSync(etc);
    const system: LoadConfigInput = { uid: 0, env: {}, systemConfigDir: etc };
    expect(
      loadConfig({ ...system, overrides: [{ key: "data.dir", value: "/srv/slipway", source: "--data-dir" }] }).dataDir,
    ).toBe("/srv/slipway");
    expect(loadConfig(userInput({}, { SLIPWAY_DATA_DIR: "/from/env" })).dataDir).toBe("/from/env");
    const file = toml(`[data]\ndir = "/from/file"\n`);
    expect(loadConfig(userInput({ configFile: file })).dataDir).toBe("/from/file");
    expect(
      loadConfig(
        userInput({ configFile: file, overrides: [{ key: "data.dir", value: "/from/flag", source: "--data-dir" }] }),
      ).dataDir,
    ).toBe("/from/flag");
  });
});

describe("oidc.allow_internal", () => {
  test("a TOML array or a comma-separated string (env, --set); each entry an origin or a CIDR", () => {
    const file = toml('[oidc]\nallow_internal = ["https://ghe.corp.example", "10.0.0.0/8"]\n');
    expect(loadConfig(userInput({ configFile: file })).config.oidc.allow_internal).toBe(
      "https://ghe.corp.example,10.0.0.0/8",
    );
    expect(
      loadConfig(userInput({}, { SLIPWAY_OIDC_ALLOW_INTERNAL: "fd00::/8,http://127.0.0.1:8080" })).config.oidc
        .allow_internal,
    ).toBe("fd00::/8,http://127.0.0.1:8080");
    for (const bad of ['["ghe.corp.example"]', '"https://ghe.corp.example/path"', '"10.0.0.0/33"']) {
      expect(
        configError(() => loadConfig(userInput({ configFile: toml(`[oidc]\nallow_internal = ${bad}\n`, "bad.toml") }))),
      ).toContain("oidc.allow_internal");
    }
  });
});
