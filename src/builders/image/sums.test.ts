/**
 * @module builders/image/sums.test
 * SHA256SUMS checks on real files: the streamed digest equals sha256sum's, both line forms parse,
 * a garbled file is refused rather than read as lacking the line, and a mismatch or a missing
 * line fails naming the file.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidInputError } from "../../errors.ts";
import { parseSums, sha256File, sumsBeside, verifyAgainstSums } from "./sums.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-sums-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = join(dir, "image.tar");
// Larger than one read chunk, so the digest spans several.
const body = Buffer.alloc(3 * (1 << 20) + 17, 7);
writeFileSync(file, body);
const digest = new Bun.CryptoHasher("sha256").update(body).digest("hex");

describe("sha256File", () => {
  test("equals the digest of the whole content", async () => {
    expect(await sha256File(file)).toBe(digest);
  });
  test("agrees with sha256sum when it is installed", async () => {
    if (!Bun.which("sha256sum")) return;
    const out = Bun.spawnSync(["sha256sum", file]).stdout.toString();
    expect(out.split(" ")[0]).toBe(await sha256File(file));
  });
});

describe("parseSums", () => {
  test("reads text and binary lines, ./ prefixes, comments and blank lines", () => {
    const a = "a".repeat(64);
    const b = "B".repeat(64);
    const m = parseSums(`# made by hand\n${a}  one.tar\n\n${b} *./two.deb\r\n`, "S");
    expect([...m]).toEqual([
      ["one.tar", a],
      ["two.deb", "b".repeat(64)],
    ]);
  });
  test("refuses a line that is not sha256sum format, naming it", () => {
    expect(() => parseSums(`${"a".repeat(63)}  x.tar\n`, "SUMS")).toThrow(/SUMS line 1/);
  });
});

describe("verifyAgainstSums", () => {
  test("passes when the line matches", async () => {
    const sums = join(dir, "SHA256SUMS");
    writeFileSync(sums, `${"0".repeat(64)}  other.deb\n${digest}  image.tar\n`);
    expect(sumsBeside(file)).toBe(sums);
    expect((await verifyAgainstSums(file, sums)).sha256).toBe(digest);
  });
  test("a different digest is an InvalidInputError naming both", async () => {
    const sums = join(dir, "bad.sums");
    writeFileSync(sums, `${"f".repeat(64)}  image.tar\n`);
    const e = await verifyAgainstSums(file, sums).catch((x) => x);
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain("image.tar does not match");
    expect(e.message).toContain(digest);
  });
  test("a sums file without the file's line is refused", async () => {
    const sums = join(dir, "other.sums");
    writeFileSync(sums, `${digest}  something-else.tar\n`);
    await expect(verifyAgainstSums(file, sums)).rejects.toThrow(/has no line for image.tar/);
  });
});
