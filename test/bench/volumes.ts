/**
 * `bun run bench:volumes`: LUKS2 format and unlock with Slipway's parameters (PBKDF2 at 1000
 * iterations, a 64-byte random key) against cryptsetup's defaults (argon2id, benchmarked to
 * ≈2 s and up to 1 GiB), measured in the same run, with each cryptsetup process's peak memory.
 * Unlock is `open --test-passphrase`: the keyslot KDF, which is where the two differ; mapping
 * the device needs dm-crypt, which the development kernel lacks (the VM test times real opens).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LUKS_FORMAT_PARAMS } from "../../src/volumes/cryptsetup.ts";
import { table, type Row } from "./report.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-bench-vol-"));
const key = crypto.getRandomValues(new Uint8Array(64));

function timed(argv: string[]): { ms: number; rssMiB: number } {
  const t = performance.now();
  const p = Bun.spawnSync(argv, { stdin: key, stdout: "pipe", stderr: "pipe" });
  const ms = performance.now() - t;
  if (p.exitCode !== 0) throw new Error(`${argv.slice(0, 2).join(" ")}: ${p.stderr.toString()}`);
  return { ms, rssMiB: (p.resourceUsage?.maxRSS ?? NaN) / 1048576 /* bytes */ };
}

function measure(formatParams: string[], img: string) {
  Bun.spawnSync(["truncate", "-s", "64M", img]);
  const format = timed([
    "cryptsetup",
    "luksFormat",
    "--batch-mode",
    ...formatParams,
    "--key-file",
    "-",
    "--keyfile-size",
    "64",
    img,
  ]);
  const unlock = timed(["cryptsetup", "open", "--test-passphrase", "--key-file", "-", "--keyfile-size", "64", img]);
  return { format, unlock };
}

try {
  const ours = measure([...LUKS_FORMAT_PARAMS], join(dir, "ours.img"));
  const defaults = measure(["--type", "luks2"], join(dir, "default.img"));
  const rows: Row[] = [
    ["luksFormat time", ours.format.ms, defaults.format.ms, "ms", 0],
    ["luksFormat peak RSS", ours.format.rssMiB, defaults.format.rssMiB, "MiB", 1],
    ["unlock (keyslot KDF) time", ours.unlock.ms, defaults.unlock.ms, "ms", 0, { op: "≤", value: 500 }],
    ["unlock peak RSS", ours.unlock.rssMiB, defaults.unlock.rssMiB, "MiB", 1],
  ];
  console.log("LUKS2 volumes: Slipway (pbkdf2, 1000 iterations) vs cryptsetup defaults (argon2id)");
  for (const l of table(["metric", "slipway", "default", "ratio", "target"], rows)) console.log(l);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
