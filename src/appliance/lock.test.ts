/** @module appliance/lock.test */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { LOCK_FILE, lockDataDir } from "./lock.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A child process that takes the lock, says so, and holds it until killed. */
function holder() {
  const code = `const { lockDataDir } = await import(${JSON.stringify(join(import.meta.dir, "lock.ts"))}); lockDataDir(${JSON.stringify(dir)}); console.log("held"); setInterval(() => {}, 1000);`;
  return Bun.spawn([process.execPath, "-e", code], { stdout: "pipe", stderr: "inherit" });
}

describe("lockDataDir", () => {
  test("a second taker is refused with the holder's pid while the first lives; kill -9 frees it", async () => {
    const child = holder();
    const reader = child.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("held");
    expect(readFileSync(join(dir, LOCK_FILE), "utf8").trim()).toBe(String(child.pid));
    let refused: unknown;
    try {
      lockDataDir(dir);
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toBe(
      `data dir ${dir} is in use by another slipway serve (pid ${child.pid}): stop it first, or give this one another --data-dir`,
    );
    child.kill(9);
    await child.exited;
    const mine = lockDataDir(dir); // no stale lock after a kill -9
    expect(readFileSync(join(dir, LOCK_FILE), "utf8").trim()).toBe(String(process.pid));
    expect(() => lockDataDir(dir)).toThrow("in use by another slipway serve"); // also within one process
    mine.release();
    lockDataDir(dir).release(); // released: free again
  });
});
