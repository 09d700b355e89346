/**
 * @module wire/gen.test
 * The generated code in ./gen is checked in (a build needs no generator and no network): this
 * runs the pinned generator (buf and protoc-gen-es from node_modules) on proto/ into a temp dir
 * and requires every file to be byte-identical to the checked-in one, none missing, none extra.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");

const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );

test("regenerating src/wire/gen from proto/ gives the checked-in files, byte for byte", () => {
  const out = mkdtempSync(join(tmpdir(), "slipway-proto-gen-"));
  try {
    const r = Bun.spawnSync([join(BIN, "buf"), "generate", "--template", "buf.gen.yaml", "-o", out], {
      cwd: ROOT,
      env: { PATH: `${BIN}:${process.env.PATH ?? ""}`, HOME: out },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect({ code: r.exitCode, stderr: r.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const checkedIn = join(ROOT, "src", "wire", "gen");
    const fresh = join(out, "src", "wire", "gen");
    const list = (d: string) =>
      files(d)
        .map((f) => relative(d, f))
        .sort();
    expect(list(fresh)).toEqual(list(checkedIn));
    expect(list(fresh).length).toBeGreaterThan(5);
    for (const f of list(fresh))
      expect({ f, same: readFileSync(join(fresh, f)).equals(readFileSync(join(checkedIn, f))) }).toEqual({
        f,
        same: true,
      });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 120_000);
