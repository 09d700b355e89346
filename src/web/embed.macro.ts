/**
 * @module web/embed.macro
 * Runs at bundle time: bundles the UI's source (web/src, Preact, minified for browsers) into
 * `/app.js` and reads the other files of web/ (the page shell, styles), so the binary serves
 * them with no files on disk and no CDN (air-gapped sites). Under `bun src/main.ts` it runs
 * when the server's source is loaded, so the UI is never stale against the code.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
};

export function embeddedWebAssets(): Record<string, { type: string; body: string }> {
  const root = join(import.meta.dir, "..", "..", "web");
  const out: Record<string, { type: string; body: string }> = {};
  // A child `bun build`: Bun.build inside a macro would wait on the bundler that waits on it.
  const bundle = Bun.spawnSync(
    [process.execPath, "build", join(root, "src", "main.tsx"), "--target=browser", "--format=esm", "--minify"],
    { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_BE_BUN: "1" } },
  );
  if (bundle.exitCode !== 0) throw new Error(`web UI bundle failed: ${bundle.stderr.toString()}`);
  out["/app.js"] = { type: TYPES.js!, body: bundle.stdout.toString() };
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (dir === root && (name === "src" || name === "tsconfig.json")) continue; // the source, bundled above
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const ext = name.split(".").pop() ?? "";
        if (TYPES[ext]) out[`/${relative(root, p)}`] = { type: TYPES[ext]!, body: readFileSync(p, "utf8") };
      }
    }
  };
  walk(root);
  return out;
}
