/**
 * `bun run build`: compiles `dist/slipway` (linux x64, baseline CPUs so it runs on any x86-64)
 * and `dist/slipway-linux-arm64`, with migrations and web assets embedded.
 * Usage: bun scripts/build.ts [--target x64|arm64|all] (default all).
 * Never --minify: Elysia reads handler source, and identifier renaming breaks it.
 * --bytecode (ESM, for top-level await) ships precompiled bytecode beside the source: start-up
 * drops from ~320 ms to ~200 ms on an empty data dir (see `bun run bench`).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { target: { type: "string", default: "all" } } });
const root = join(import.meta.dir, "..");
const targets = [
  { name: "x64", target: "bun-linux-x64-baseline", out: "dist/slipway" },
  { name: "arm64", target: "bun-linux-arm64", out: "dist/slipway-linux-arm64" },
].filter((t) => values.target === "all" || values.target === t.name);
if (targets.length === 0) {
  console.error(`unknown --target ${values.target}; use x64, arm64 or all`);
  process.exit(2);
}

for (const t of targets) {
  const started = performance.now();
  const proc = Bun.spawnSync(
    [
      process.execPath,
      "build",
      "--compile",
      "--bytecode",
      "--format=esm",
      `--target=${t.target}`,
      "--minify-whitespace",
      "--minify-syntax",
      // What the bundle took from node_modules: the package test holds it against the SBOM.
      `--metafile=${t.out}.meta.json`,
      "src/main.ts",
      "--outfile",
      t.out,
    ],
    { cwd: root, stdout: "inherit", stderr: "inherit" },
  );
  if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
  console.log(`built ${t.out} (${t.target}) in ${Math.round(performance.now() - started)} ms`);
}
