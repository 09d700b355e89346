/**
 * @module test/system/packages
 * The .debs the system test installs: this checkout's (scripts/build.ts and scripts/package.ts,
 * as `bun run package`, for amd64 and arm64) and the previous release's. The previous release is
 * commit PREVIOUS_COMMIT (package.json 0.1.0, from before the packaging existed): its tree is
 * taken with `git archive`, compiled with this checkout's node_modules linked in, and packaged by
 * minimal-deb.ts with that tree's own unit (its binary does not speak sd_notify, so the new
 * Type=notify unit would not fit it). That .deb is cached under CACHE_DIR by commit.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newestSourceTime, slipwayBinary } from "../support/binary.ts";
import { CACHE_DIR } from "../support/builder-image.ts";
import { buildMinimalDeb, MINIMAL_DEB_REVISION } from "./minimal-deb.ts";

export const ROOT = join(import.meta.dir, "..", "..");
export const PREVIOUS_COMMIT = "769acde";
export const PREVIOUS_VERSION = "0.1.0";

export const currentVersion = (): string =>
  (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

function run(argv: string[], cwd: string): void {
  const r = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} (in ${cwd}) exited ${r.exitCode}:\n${r.stderr}${r.stdout}`);
}

export interface CurrentDebs {
  amd64: string;
  arm64: string;
}

let current: { dir: string; debs: CurrentDebs } | null = null;

/**
 * This checkout's .debs, as `bun run package` makes them, built once per `bun test` run and
 * shared by the suites that need them (the package test and the system test): the x64 binary
 * through the shared helper, the arm64 one when older than the sources, then scripts/package.ts.
 * The run-end cleanup removes the folder.
 */
export function currentDebs(): CurrentDebs {
  if (current) return current.debs;
  slipwayBinary();
  const arm = join(ROOT, "dist", "slipway-linux-arm64");
  if (!existsSync(arm) || statSync(arm).mtimeMs < newestSourceTime())
    run([process.execPath, "scripts/build.ts", "--target", "arm64"], ROOT);
  const dir = mkdtempSync(join(tmpdir(), "slipway-debs-"));
  run([process.execPath, "scripts/package.ts", "--arch", "all", "--out", dir], ROOT);
  const version = currentVersion();
  const names = readdirSync(dir);
  const pick = (arch: string) => {
    const name = `slipway_${version}_${arch}.deb`;
    if (!names.includes(name)) throw new Error(`scripts/package.ts wrote ${names.join(", ")}, not ${name}`);
    return join(dir, name);
  };
  current = { dir, debs: { amd64: pick("amd64"), arm64: pick("arm64") } };
  return current.debs;
}

/** Removes the shared .debs (called once at the end of the run). */
export function removeCurrentDebs(): void {
  if (current) rmSync(current.dir, { recursive: true, force: true });
  current = null;
}

/** The previous release's .deb, copied into `outDir` (built once and cached by commit). */
export function buildPreviousDeb(outDir: string): string {
  const name = `slipway_${PREVIOUS_VERSION}_amd64.deb`;
  const cached = join(CACHE_DIR, `slipway_${PREVIOUS_VERSION}_amd64-${PREVIOUS_COMMIT}-r${MINIMAL_DEB_REVISION}.deb`);
  if (!existsSync(cached)) {
    const work = mkdtempSync(join(tmpdir(), "slipway-prev-"));
    try {
      const tree = join(work, "tree");
      mkdirSync(tree);
      const archive = Bun.spawnSync(["git", "-C", ROOT, "archive", "--format=tar", PREVIOUS_COMMIT], {
        stdout: "pipe",
        stderr: "pipe",
      });
      if (archive.exitCode !== 0) throw new Error(`git archive ${PREVIOUS_COMMIT}: ${archive.stderr}`);
      const x = Bun.spawnSync(["tar", "-x", "-C", tree], { stdin: archive.stdout, stdout: "pipe", stderr: "pipe" });
      if (x.exitCode !== 0) throw new Error(`unpacking ${PREVIOUS_COMMIT}: ${x.stderr}`);
      symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
      run([process.execPath, "scripts/build.ts", "--target", "x64"], tree);
      const deb = buildMinimalDeb({
        binary: join(tree, "dist", "slipway"),
        tree,
        version: PREVIOUS_VERSION,
        outDir: work,
      });
      mkdirSync(CACHE_DIR, { recursive: true });
      copyFileSync(deb, `${cached}.tmp`);
      renameSync(`${cached}.tmp`, cached);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  mkdirSync(outDir, { recursive: true });
  copyFileSync(cached, join(outDir, name));
  return join(outDir, name);
}
