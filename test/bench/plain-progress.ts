/**
 * @module test/bench/plain-progress
 * Step durations from a BuildKit client's `--progress plain` output (buildx and the depot CLI
 * print the same format): the benches split a build's wall time into its context upload and its
 * export with it. Plain output prints a step's duration to a tenth of a second.
 */

/** Seconds of the steps named "[internal] load build context" (upload) and "exporting to …" (export); NaN when absent. */
export function stepSeconds(log: string): { upload: number; export: number } {
  const names = new Map<string, string>();
  const done = new Map<string, number>();
  for (const line of log.split("\n")) {
    const m = /^#(\d+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const id = m[1]!;
    const rest = m[2]!;
    if (!names.has(id)) names.set(id, rest); // a step's first line is its name; later ones repeat the number
    const d = /^DONE (\d+(?:\.\d+)?)s$/.exec(rest);
    if (d) done.set(id, Number(d[1]));
  }
  const sum = (pick: (name: string) => boolean) => {
    let total = Number.NaN;
    for (const [id, name] of names)
      if (pick(name) && done.has(id)) total = (Number.isNaN(total) ? 0 : total) + done.get(id)!;
    return total;
  };
  return {
    upload: sum((n) => n.includes("load build context")),
    export: sum((n) => n.startsWith("exporting to")),
  };
}
