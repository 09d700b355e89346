/**
 * @module appliance/lock
 * One `serve` per data dir: an exclusive flock(2) on `<data dir>/serve.lock`, held for the
 * process's life. The kernel drops it when the process ends however it ends (kill -9 included),
 * so a stale lock cannot exist, unlike a pid file. Two serves on one data dir would both adopt
 * the same builders and write the same database; the second is refused with the first's pid.
 * Bun has no flock, hence libc through bun:ffi (as agent/nflog does for netlink).
 */
import { dlopen, FFIType } from "bun:ffi";
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";

export const LOCK_FILE = "serve.lock";

const LOCK_EX = 2;
const LOCK_NB = 4;

let libc: { symbols: { flock(fd: number, op: number): number } } | null = null;
const flock = (fd: number, op: number): number => {
  libc ??= dlopen("libc.so.6", { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
  return libc.symbols.flock(fd, op);
};

export interface DataDirLock {
  release(): void;
}

/** Takes the data dir's lock or throws a ConfigError naming the serve that holds it. */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  const fd = openSync(path, "a+", 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    const holder = readFileSync(path, "utf8").trim();
    throw new ConfigError(
      `data dir ${dataDir} is in use by another slipway serve${/^\d+$/.test(holder) ? ` (pid ${holder})` : ""}: stop it first, or give this one another --data-dir`,
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      closeSync(fd); // closing the last descriptor drops the lock
    },
  };
}
