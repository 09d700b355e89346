// Installs the node dependencies when they are missing or older than the lockfile, so that
// `npm start` and `npm test` work on a fresh clone with nothing but Node.js and npm.
// Plain Node (no Bun yet): Bun itself arrives through this install, from the npm registry.
import { existsSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const lock = join(root, "package-lock.json");
const marker = join(root, "node_modules", ".package-lock.json");
const bun = join(root, "node_modules", ".bin", "bun");

const stale = !existsSync(marker) || !existsSync(bun) || statSync(lock).mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error("slipway: installing dependencies (npm ci) ...");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error("slipway: npm ci failed; see the output above");
    process.exit(r.status ?? 1);
  }
}
