/**
 * @module scripts/start
 * `npm start [-- FLAGS]`: compiles the `slipway` binary for this machine when it is missing or
 * older than the sources (`bun scripts/build.ts`, about 15 s), links it as dist/bin/slipway (and
 * the depot CLI npm installed, which has no node_modules/.bin entry of its own, as dist/bin/depot),
 * says in one line how to put them on PATH, then runs `slipway serve FLAGS`. The newcomer gets the real
 * binary, the one the README's other commands call, rather than a second way to run the sources:
 * `npx slipway` would need the package installed somewhere, and a PATH line works in every shell.
 */
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..");
const arm = process.arch === "arm64";
const target = arm ? "arm64" : "x64";
const binary = join(root, "dist", arm ? "slipway-linux-arm64" : "slipway");
const binDir = join(root, "dist", "bin");
const link = join(binDir, "slipway");

/** Newest modification time under `path` (a file, or a directory walked whole). */
function newest(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let n = st.mtimeMs;
  for (const name of readdirSync(path)) n = Math.max(n, newest(join(path, name)));
  return n;
}

const sources = Math.max(
  ...["src", "web", "migrations", "package.json", "package-lock.json", "bunfig.toml"].map((p) => newest(join(root, p))),
);
let note = "up to date";
if (!existsSync(binary) || statSync(binary).mtimeMs < sources) {
  console.error(`slipway: compiling ${relative(root, binary)} (about 15 s) ...`);
  const t0 = performance.now();
  const r = Bun.spawnSync([process.execPath, join(root, "scripts", "build.ts"), "--target", target], {
    cwd: root,
    stdout: "ignore",
    stderr: "inherit",
  });
  if (r.exitCode !== 0) {
    console.error("slipway: compiling failed; see the output above");
    process.exit(r.exitCode ?? 1);
  }
  note = `compiled in ${((performance.now() - t0) / 1000).toFixed(0)} s`;
}
/** Points `link` at `target` (relative, so a moved checkout keeps working). */
function linkTo(link: string, target: string): void {
  const want = relative(binDir, target);
  let have: string | null = null;
  try {
    have = readlinkSync(link);
  } catch {}
  if (have === want) return;
  mkdirSync(binDir, { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(want, link);
}
linkTo(link, binary);
// The optional dependency exists only where npm could install it (linux x64 today).
const depot = join(root, "node_modules", "@depot", `cli-linux-${target}`, "bin", "depot");
if (existsSync(depot)) linkTo(join(binDir, "depot"), depot);
const also = existsSync(depot) ? " and depot" : "";
console.error(`slipway: the binary is ${link} (${note}); to run slipway${also} by name: export PATH="${binDir}:$PATH"`);

const child = Bun.spawn([link, "serve", ...Bun.argv.slice(2)], { stdio: ["inherit", "inherit", "inherit"] });
// serve drains on its first stop signal and cancels builds on a second, so it must get exactly
// one: Ctrl-C (SIGINT) and a closed terminal (SIGHUP) already reach it from the terminal, and npm
// passes them to this process as well, so those are not passed on; SIGTERM (kill, npm) is.
process.on("SIGINT", () => {});
process.on("SIGHUP", () => {});
process.on("SIGTERM", () => child.kill("SIGTERM"));
process.exit(await child.exited);
