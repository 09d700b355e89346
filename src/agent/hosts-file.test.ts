/**
 * @module agent/hosts-file.test
 * The managed /etc/hosts block on real files: removing it gives back the file byte for byte,
 * whether or not it ended with a newline, and nothing but `address name` lines is ever written.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BEGIN, END, withBlock, writeHostsBlock } from "./hosts-file.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-hosts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a file without a final newline is restored byte for byte, after any number of rewrites", () => {
  for (const original of [
    "127.0.0.1 localhost",
    "127.0.0.1 localhost\n::1 localhost",
    "127.0.0.1 localhost\n",
    "",
    "\n\n# only comments",
  ]) {
    const path = join(dir, "hosts");
    writeFileSync(path, original);
    expect(writeHostsBlock(path, new Map([["a.test", ["10.0.0.1"]]]))).toBe(true);
    const pinned = readFileSync(path, "utf8");
    expect(pinned).toContain(`\n${BEGIN}\n10.0.0.1 a.test\n${END}`.slice(original === "" ? 1 : 0));
    expect(pinned.startsWith(original)).toBe(true);
    writeHostsBlock(path, new Map([["b.test", ["10.0.0.2", "fd00::2"]]]));
    writeHostsBlock(path, new Map([["b.test", ["10.0.0.3"]]]));
    expect(writeHostsBlock(path, new Map())).toBe(true);
    expect(readFileSync(path, "utf8")).toBe(original);
  }
});

test("lines added after the block by someone else stay; removing the block keeps them and the rest exactly", () => {
  const original = "127.0.0.1 localhost";
  const pinned = withBlock(original, new Map([["a.test", ["10.0.0.1"]]]));
  const edited = `${pinned}\n10.1.1.1 mine.test\n`;
  expect(withBlock(edited, new Map())).toBe(`${original}\n10.1.1.1 mine.test\n`);
});

test("a marker that is not on a line of its own is not taken for the block", () => {
  const original = `127.0.0.1 localhost # ${BEGIN}\n# ${END}\n`;
  expect(withBlock(original, new Map())).toBe(original);
  expect(withBlock(withBlock(original, new Map([["a.test", ["10.0.0.1"]]])), new Map())).toBe(original);
});

test("only host names and IP addresses are written: a name with a newline or spaces cannot add a line", () => {
  const text = withBlock(
    "127.0.0.1 localhost\n",
    new Map([
      ["x\n10.66.6.6 victim.test\n#.wild.test", ["10.0.0.1"]],
      ["a b.wild.test", ["10.0.0.1"]],
      ["ok.wild.test", ["10.0.0.2", "10.0.0.3 victim.test", "not-an-address"]],
    ]),
  );
  expect(text).toBe(`127.0.0.1 localhost\n${BEGIN}\n10.0.0.2 ok.wild.test\n${END}\n`);
  expect(withBlock("127.0.0.1 localhost\n", new Map([["bad name", ["10.0.0.1"]]]))).toBe("127.0.0.1 localhost\n");
});
