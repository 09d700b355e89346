/**
 * @module builders/image/mirror
 * The Debian mirror the builder image is assembled from when the operator names none: the first
 * Debian archive URL in the host's APT sources (one-line `sources.list` and deb822 `.sources`
 * files), which on an air-gapped site is its local mirror; else deb.debian.org.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const FALLBACK_MIRROR = "http://deb.debian.org/debian";

/** Archive URLs that carry security updates or ports, not the main archive debootstrap needs. */
const NOT_MAIN_ARCHIVE = /(-security|security\.debian\.org|\/debian-ports|\/debian-debug)\/?$/;

function usable(uri: string): boolean {
  if (!/^https?:\/\//.test(uri)) return false;
  return !NOT_MAIN_ARCHIVE.test(uri.replace(/\/+$/, ""));
}

/** URIs of `deb` lines in a one-line-style sources.list (options in [brackets] skipped). */
export function urisFromList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line.startsWith("deb ") && !line.startsWith("deb\t")) continue;
    const rest = line
      .slice(3)
      .trim()
      .replace(/^\[[^\]]*\]\s*/, "");
    const uri = rest.split(/\s+/)[0];
    if (uri) out.push(uri);
  }
  return out;
}

/** URIs of enabled `Types: deb` stanzas in a deb822 `.sources` file. */
export function urisFromDeb822(text: string): string[] {
  const out: string[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = "";
    for (const raw of stanza.split("\n")) {
      if (raw.startsWith("#")) continue;
      if (/^\s/.test(raw) && last) {
        fields.set(last, `${fields.get(last)} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (m) {
        last = m[1]!.toLowerCase();
        fields.set(last, m[2]!.trim());
      }
    }
    if (!(fields.get("types") ?? "").split(/\s+/).includes("deb")) continue;
    if (/^(no|false)$/i.test(fields.get("enabled") ?? "yes")) continue;
    out.push(...(fields.get("uris") ?? "").split(/\s+/).filter(Boolean));
  }
  return out;
}

/** The host's main Debian archive URL from its APT sources, or FALLBACK_MIRROR. */
export function defaultMirror(aptDir = "/etc/apt"): string {
  const uris: string[] = [];
  const list = join(aptDir, "sources.list");
  if (existsSync(list)) uris.push(...urisFromList(readFileSync(list, "utf8")));
  const dir = join(aptDir, "sources.list.d");
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      try {
        if (name.endsWith(".list")) uris.push(...urisFromList(readFileSync(p, "utf8")));
        else if (name.endsWith(".sources")) uris.push(...urisFromDeb822(readFileSync(p, "utf8")));
      } catch {
        // unreadable source file: ignore it, as apt would complain about it elsewhere
      }
    }
  }
  // Prefer an archive that looks like Debian's main one, then any usable one.
  const candidates = uris.filter(usable);
  return (candidates.find((u) => /\/debian\/?$/.test(u)) ?? candidates[0] ?? FALLBACK_MIRROR).replace(/\/+$/, "");
}
