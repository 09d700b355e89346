// Installs the node dependencies when they are missing or older than the lockfile, so that
// `npm start` and `npm test` work on a fresh clone with nothing but Node.js and npm.
// Plain Node (no Bun yet): Bun itself arrives through this install, from the npm registry.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const lock = join(root, "package-lock.json");
const marker = join(root, "node_modules", ".package-lock.json");
const bun = join(root, "node_modules", ".bin", "bun");
const hashFile = join(root, "node_modules", ".slipway-lock.sha256");

// Compared by content, not time: a fresh checkout (or a git worktree) has a newer lockfile
// timestamp without any change in what it pins.
const lockHash = createHash("sha256").update(readFileSync(lock)).digest("hex");
const installed = existsSync(hashFile) ? readFileSync(hashFile, "utf8").trim() : null;
const stale = !existsSync(marker) || !existsSync(bun) || installed !== lockHash;
if (stale) {
  console.error("slipway: installing dependencies (npm ci) ...");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error("slipway: npm ci failed; see the output above");
    process.exit(r.status ?? 1);
  }
  writeFileSync(hashFile, `${lockHash}\n`);
}
