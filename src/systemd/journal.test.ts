/**
 * @module systemd/journal.test
 * JOURNAL_STREAM detection against real file descriptors: it matches only the very file fd 2
 * (here: any fd) is open on, by device and inode.
 */
import { afterAll, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isJournalStream, stderrIsJournal } from "./journal.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-journal-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("JOURNAL_STREAM naming the file an fd is open on matches; another file, junk or unset does not", () => {
  const a = openSync(join(work, "a"), "w");
  const b = openSync(join(work, "b"), "w");
  try {
    const st = fstatSync(a, { bigint: true });
    const stream = `${st.dev}:${st.ino}`;
    expect(isJournalStream(stream, a)).toBe(true);
    expect(isJournalStream(stream, b)).toBe(false);
    expect(isJournalStream(`${st.dev}:${st.ino + 1n}`, a)).toBe(false);
    expect(isJournalStream("junk", a)).toBe(false);
    expect(isJournalStream(undefined, a)).toBe(false);
  } finally {
    closeSync(a);
    closeSync(b);
  }
});

test("this process's stderr: matches its own dev:ino, not an inherited stale one", () => {
  const st = fstatSync(2, { bigint: true });
  expect(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` })).toBe(true);
  expect(stderrIsJournal({ JOURNAL_STREAM: "1:1" })).toBe(false);
  expect(stderrIsJournal({})).toBe(false);
});
