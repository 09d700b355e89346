/**
 * @module secrets/master-key.test
 * Covers loadOrCreateMasterKey and locateMasterKey: first-start generation of <dataDir>/master.key
 * (mode 0600, base64 of 32 bytes) and reuse, refusal of group/other-readable files, the accepted
 * encodings (raw, hex, base64) and garbage, and source precedence (configured file, systemd
 * credential, data dir), including a configured file that does not exist.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PreconditionError } from "../errors.ts";
import { loadOrCreateMasterKey, locateMasterKey, MASTER_KEY_FILE, SYSTEMD_CREDENTIAL } from "./master-key.ts";

let dir: string;
let dataDir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "slipway-master-key-"));
  dataDir = join(dir, "data");
  mkdirSync(dataDir);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const randomKey = () => crypto.getRandomValues(new Uint8Array(32));

/** Writes a key file with the given mode (explicit chmod, so the umask does not matter). */
function keyFile(name: string, data: string | Uint8Array, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  chmodSync(p, mode);
  return p;
}

function preconditionError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PreconditionError);
    return (e as Error).message;
  }
  throw new Error("expected a PreconditionError, but nothing was thrown");
}

describe("loadOrCreateMasterKey: data dir", () => {
  test("generates <dataDir>/master.key with mode 0600 holding base64 of 32 bytes, then reuses it", () => {
    const first = loadOrCreateMasterKey({ dataDir });
    const path = join(dataDir, MASTER_KEY_FILE);
    expect(first).toMatchObject({ source: "data-dir", path, created: true });
    expect(first.bytes.length).toBe(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const content = readFileSync(path, "utf8");
    expect(content).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(Buffer.from(content.trim(), "base64").equals(Buffer.from(first.bytes))).toBe(true);

    const second = loadOrCreateMasterKey({ dataDir });
    expect(second.created).toBe(false);
    expect(second.source).toBe("data-dir");
    expect(second.bytes).toEqual(first.bytes);
  });

  test("two data dirs get different keys", () => {
    const other = join(dir, "other");
    mkdirSync(other);
    expect(loadOrCreateMasterKey({ dataDir }).bytes).not.toEqual(loadOrCreateMasterKey({ dataDir: other }).bytes);
  });

  test("refuses a key file readable by group or others, saying chmod 600", () => {
    const path = join(dataDir, MASTER_KEY_FILE);
    writeFileSync(path, `${Buffer.from(randomKey()).toString("base64")}\n`);
    chmodSync(path, 0o644);
    const msg = preconditionError(() => loadOrCreateMasterKey({ dataDir }));
    expect(msg).toContain("0644");
    expect(msg).toContain(`chmod 600 ${path}`);
    chmodSync(path, 0o640);
    preconditionError(() => loadOrCreateMasterKey({ dataDir }));
    chmodSync(path, 0o400);
    expect(loadOrCreateMasterKey({ dataDir }).bytes.length).toBe(32);
  });
});

describe("loadOrCreateMasterKey: encodings", () => {
  test("accepts raw 32 bytes, 64 hex characters and base64 text, with or without newline", () => {
    const key = randomKey();
    const forms: [string, string | Uint8Array][] = [
      ["raw", key],
      ["hex", Buffer.from(key).toString("hex")],
      ["hex-nl", `${Buffer.from(key).toString("hex").toUpperCase()}\n`],
      ["b64", Buffer.from(key).toString("base64")],
      ["b64-nl", `${Buffer.from(key).toString("base64")}\n`],
    ];
    for (const [name, data] of forms) {
      const configuredFile = keyFile(name, data);
      const m = loadOrCreateMasterKey({ dataDir, configuredFile });
      expect(m.bytes).toEqual(key);
      expect(m.created).toBe(false);
    }
  });

  test("rejects garbage and keys of the wrong size", () => {
    for (const [name, data] of [
      ["garbage", "this is not a key\n"],
      ["short-hex", `${"ab".repeat(20)}\n`],
      ["short-b64", Buffer.from(randomKey().subarray(0, 16)).toString("base64")],
      ["raw-31", randomKey().subarray(0, 31)],
      ["empty", ""],
    ] as const) {
      const configuredFile = keyFile(name, data);
      const msg = preconditionError(() => loadOrCreateMasterKey({ dataDir, configuredFile }));
      expect(msg).toContain(configuredFile);
      expect(msg).toContain("256-bit");
    }
  });
});

describe("loadOrCreateMasterKey: sources", () => {
  test("a configured file takes precedence over the credential and the data dir", () => {
    const configured = randomKey();
    const configuredFile = keyFile("configured.key", configured);
    const creds = join(dir, "creds");
    mkdirSync(creds);
    writeFileSync(join(creds, SYSTEMD_CREDENTIAL), randomKey(), { mode: 0o400 });
    loadOrCreateMasterKey({ dataDir }); // a data-dir key exists too
    const m = loadOrCreateMasterKey({ dataDir, configuredFile, credentialsDirectory: creds });
    expect(m).toMatchObject({ source: "config", path: configuredFile, created: false });
    expect(m.bytes).toEqual(configured);
  });

  test("a systemd credential is used when no file is configured, and nothing is generated", () => {
    const key = randomKey();
    const creds = join(dir, "creds");
    mkdirSync(creds);
    const credPath = join(creds, SYSTEMD_CREDENTIAL);
    writeFileSync(credPath, `${Buffer.from(key).toString("base64")}\n`);
    chmodSync(credPath, 0o400);
    const m = loadOrCreateMasterKey({ dataDir, credentialsDirectory: creds });
    expect(m).toMatchObject({ source: "systemd-credential", path: credPath, created: false });
    expect(m.bytes).toEqual(key);
    expect(existsSync(join(dataDir, MASTER_KEY_FILE))).toBe(false);
  });

  test("a credentials directory without the credential falls back to the data dir", () => {
    const creds = join(dir, "creds");
    mkdirSync(creds);
    expect(locateMasterKey({ dataDir, credentialsDirectory: creds })).toEqual({
      source: "data-dir",
      path: join(dataDir, MASTER_KEY_FILE),
    });
    expect(loadOrCreateMasterKey({ dataDir, credentialsDirectory: creds }).created).toBe(true);
  });

  test("a configured file that does not exist is an error and is not generated", () => {
    const configuredFile = join(dir, "missing.key");
    const msg = preconditionError(() => loadOrCreateMasterKey({ dataDir, configuredFile }));
    expect(msg).toContain(configuredFile);
    expect(msg).toContain("does not exist");
    expect(existsSync(configuredFile)).toBe(false);
    expect(existsSync(join(dataDir, MASTER_KEY_FILE))).toBe(false);
  });
});
