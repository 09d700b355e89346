/**
 * @module secrets/master-key
 * The one 256-bit key that wraps every secret Slipway keeps at rest (CA keys, volume keys).
 * Sources, first match wins: `secrets.master_key_file`; a systemd credential named
 * `slipway-master-key` ($CREDENTIALS_DIRECTORY, LoadCredential=/LoadCredentialEncrypted=);
 * `<data-dir>/master.key`, generated on first start with mode 0600.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { PreconditionError } from "../errors.ts";
import { writeFileAtomic } from "../fs/atomic.ts";

export const MASTER_KEY_FILE = "master.key";
export const SYSTEMD_CREDENTIAL = "slipway-master-key";

export type MasterKeySource = "config" | "systemd-credential" | "data-dir";

export interface MasterKeyMaterial {
  bytes: Uint8Array;
  source: MasterKeySource;
  path: string;
  /** True when this call generated it (first start). */
  created: boolean;
}

export interface LocateOptions {
  dataDir: string;
  configuredFile?: string;
  credentialsDirectory?: string;
}

/** Where the key comes from, without reading it (doctor uses this too). */
export function locateMasterKey(o: LocateOptions): { source: MasterKeySource; path: string } {
  if (o.configuredFile) return { source: "config", path: o.configuredFile };
  if (o.credentialsDirectory) {
    const p = join(o.credentialsDirectory, SYSTEMD_CREDENTIAL);
    if (existsSync(p)) return { source: "systemd-credential", path: p };
  }
  return { source: "data-dir", path: join(o.dataDir, MASTER_KEY_FILE) };
}

/** Loads the master key, generating `<data-dir>/master.key` when that is the source and it is absent. */
export function loadOrCreateMasterKey(o: LocateOptions): MasterKeyMaterial {
  const { source, path } = locateMasterKey(o);
  if (!existsSync(path)) {
    if (source !== "data-dir") throw new PreconditionError(`master key file ${path} (from ${source}) does not exist`);
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    writeFileAtomic(path, `${Buffer.from(bytes).toString("base64")}\n`, 0o600);
    return { bytes, source, path, created: true };
  }
  // A key readable by others is a leaked key: refuse, as ssh does, rather than carry on.
  // (systemd credentials are owned by the service and mode 0400: fine.)
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new PreconditionError(
      `master key file ${path} has mode ${mode.toString(8).padStart(4, "0")}; it must not be readable by group or others (chmod 600 ${path})`,
    );
  }
  return { bytes: decodeKey(readFileSync(path), path), source, path, created: false };
}

/** Accepts 32 raw bytes, or 32 bytes as base64 or hex text (with or without a newline). */
export function decodeKey(data: Uint8Array, path: string): Uint8Array {
  // 32 printable characters are text (e.g. a 128-bit hex key), not 32 random bytes.
  if (data.length === 32 && !data.every((b) => b >= 0x20 && b < 0x7f)) return new Uint8Array(data);
  const text = Buffer.from(data).toString("utf8").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, "hex"));
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return new Uint8Array(Buffer.from(text, "base64"));
  throw new PreconditionError(
    `master key file ${path} does not hold a 256-bit key (expected 32 bytes, raw, base64 or hex)`,
  );
}
