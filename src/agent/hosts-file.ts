/**
 * @module agent/hosts-file
 * The managed block of /etc/hosts that pins resolved hostnames for host and uid scopes, so the
 * runners' own lookups return exactly the addresses in the allow/deny sets. Only the lines
 * between the markers are ever written, each `address name` with a valid host name; the rest of
 * the file is kept byte for byte, and removing the block restores the file exactly (its last
 * newline, or lack of one, included). Written atomically (temporary file + rename); when the
 * file is a mount point (a container's /etc/hosts, `ip netns exec`'s bind mount) rename is
 * impossible and it is rewritten in place.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { writeFileAtomic } from "../fs/atomic.ts";
import { isHostName } from "./learned-names.ts";

export const BEGIN = "# BEGIN slipway egress (managed by slipway; do not edit)";
export const END = "# END slipway egress";

/** `text` without the block: exactly the file as it was before the block was added. */
function withoutBlock(text: string): string {
  const begin = text.startsWith(`${BEGIN}\n`) ? 0 : text.indexOf(`\n${BEGIN}\n`) + 1;
  if (begin === 0 && !text.startsWith(`${BEGIN}\n`)) return text;
  for (let at = text.indexOf(`\n${END}`, begin); at >= 0; at = text.indexOf(`\n${END}`, at + 1)) {
    const after = at + 1 + END.length;
    if (text[after] === "\n") return text.slice(0, begin) + text.slice(after + 1);
    // The block is last and ends without a newline: the file had none, and the one before BEGIN is ours.
    if (after === text.length) return text.slice(0, Math.max(0, begin - 1));
  }
  return text;
}

/** A pin line can only be `address name`: a name or address that is anything else is never written. */
function pinLine(name: string, addr: string): string | null {
  if (!isHostName(name) || !isIP(addr)) return null;
  return `${addr} ${name}`;
}

/**
 * `text` with the block replaced by `pins` (or removed when empty). The file keeps its own last
 * newline or lack of one (after a file without one, the block starts with a newline and ends
 * without), so removing the block restores it byte for byte.
 */
export function withBlock(text: string, pins: Map<string, string[]>): string {
  const without = withoutBlock(text);
  const lines: string[] = [];
  for (const [name, addrs] of [...pins].sort(([a], [b]) => a.localeCompare(b))) {
    for (const a of addrs) {
      const line = pinLine(name, a);
      if (line) lines.push(line);
    }
  }
  if (lines.length === 0) return without;
  const block = [BEGIN, ...lines, END].join("\n");
  return without === "" || without.endsWith("\n") ? `${without}${block}\n` : `${without}\n${block}`;
}

export function writeHostsBlock(path: string, pins: Map<string, string[]>): boolean {
  const before = existsSync(path) ? readFileSync(path, "utf8") : "";
  const after = withBlock(before, pins);
  if (after === before) return false;
  const mode = existsSync(path) ? statSync(path).mode & 0o777 : 0o644;
  try {
    writeFileAtomic(path, after, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EBUSY" && (e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    writeFileSync(path, after);
  }
  return true;
}
