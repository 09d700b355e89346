/**
 * @module systemd/journal
 * Is stderr connected to the journal? systemd sets JOURNAL_STREAM=<dev>:<inode> to the stream
 * it gave the service; it is only ours if fd 2 is still that very stream (a child whose stderr
 * was redirected inherits the variable but not the stream), as sd_journal_stream_fd(3) advises.
 */
import { fstatSync } from "node:fs";

/** True when `JOURNAL_STREAM` names the file `fd` is open on. */
export function isJournalStream(journalStream: string | undefined, fd = 2): boolean {
  const m = /^(\d+):(\d+)$/.exec(journalStream ?? "");
  if (!m) return false;
  let st: { dev: bigint; ino: bigint };
  try {
    st = fstatSync(fd, { bigint: true });
  } catch {
    return false;
  }
  return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
}

/** Whether this process's stderr is the journal. */
export function stderrIsJournal(env: Record<string, string | undefined>): boolean {
  return isJournalStream(env.JOURNAL_STREAM, 2);
}
