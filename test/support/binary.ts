/**
 * @module test/support/binary
 * The compiled `slipway` binary for end-to-end tests: built once per test run when missing or
 * older than the sources, then copied into an empty directory so nothing of the source tree is
 * within its reach.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");
const DIST = join(ROOT, "dist", "slipway");

function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestSource(p) : st.mtimeMs);
  }
  return newest;
}

let built: string | null = null;
const copies: string[] = [];

/** Removes the directories holding this process's copies of the binary (end of the run). */
export function removeBinaryCopies(): void {
  for (const dir of copies.splice(0)) rmSync(dir, { recursive: true, force: true });
  built = null;
}

/** Path to a copy of the binary in a fresh empty directory. */
/** The newest modification time of what the binary is compiled from. */
export function newestSourceTime(): number {
  return Math.max(
    newestSource(join(ROOT, "src")),
    newestSource(join(ROOT, "migrations")),
    newestSource(join(ROOT, "web")),
  );
}

export function slipwayBinary(): string {
  if (!built) {
    if (!existsSync(DIST) || statSync(DIST).mtimeMs < newestSourceTime()) {
      const r = Bun.spawnSync([process.execPath, join(ROOT, "scripts", "build.ts"), "--target", "x64"], {
        cwd: ROOT,
        stdout: "pipe",
        stderr: "pipe",
      });
      if (r.exitCode !== 0) throw new Error(`building dist/slipway failed:\n${r.stderr.toString()}`);
    }
    const dir = mkdtempSync(join(tmpdir(), "slipway-bin-"));
    copies.push(dir);
    process.once("exit", removeBinaryCopies); // a script's run; `bun test` fires no exit event: its preload's afterAll calls it
    built = join(dir, "slipway");
    copyFileSync(DIST, built);
  }
  return built;
}
