/**
 * @module egress/hosts-file
 * The managed block of /etc/hosts that pins resolved hostnames for host and uid scopes, so the
 * runners' own lookups return exactly the addresses in the allow/deny sets. Only the lines
 * between the markers are ever written; the rest of the file is kept byte for byte, and removing
 * the block restores the file exactly. Written atomically (temporary file + rename); when the
 * file is a mount point (a container's /etc/hosts, `ip netns exec`'s bind mount) rename is
 * impossible and it is rewritten in place.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { writeFileAtomic } from "../fs/atomic.ts";

export const BEGIN = "# BEGIN slipway egress (managed by slipway; do not edit)";
export const END = "# END slipway egress";

/** `text` with the block replaced by `pins` (or removed when empty). */
export function withBlock(text: string, pins: Map<string, string[]>): string {
  const start = text.indexOf(`${BEGIN}\n`);
  const endAt = start >= 0 ? text.indexOf(`${END}\n`, start) : -1;
  const without = start >= 0 && endAt >= 0 ? text.slice(0, start) + text.slice(endAt + END.length + 1) : text;
  if (pins.size === 0) return without;
  const lines = [BEGIN];
  for (const [name, addrs] of [...pins].sort(([a], [b]) => a.localeCompare(b))) for (const a of addrs) lines.push(`${a} ${name}`);
  lines.push(END);
  const sep = without === "" || without.endsWith("\n") ? "" : "\n";
  return `${without}${sep}${lines.join("\n")}\n`;
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
