/**
 * @module cli/output
 * How commands print for people: aligned tables, `key: value` fields and timestamps without
 * milliseconds (`--json` prints the API's JSON instead, see printJson in ./command.ts).
 */
import type { Io } from "./command.ts";

/** Aligned columns with a header; `empty` is printed instead when there are no rows. */
export function table(io: Io, headers: string[], rows: (string | number | null | undefined)[][], empty: string): void {
  if (rows.length === 0) {
    io.out(empty);
    return;
  }
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === "" ? "-" : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  io.out(line(headers));
  for (const r of cells) io.out(line(r));
}

/** `key: value` lines, keys aligned. */
export function fields(io: Io, pairs: [string, string | number | boolean | null | undefined][]): void {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  for (const [k, v] of pairs)
    io.out(`${(`${k}:`).padEnd(width)} ${v === null || v === undefined || v === "" ? "-" : String(v)}`);
}

/** ISO timestamps without milliseconds, or "-". */
export const when = (iso: string | null | undefined) => (iso ? iso.replace(/\.\d{3}Z$/, "Z") : "-");
