/**
 * @module test/bench/report
 * What the benches share: integer options, and the figures table (value, baseline, ratio,
 * target met or missed).
 */

export function intOpt(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

export type Row = [
  metric: string,
  value: number,
  baseline: number,
  unit: string,
  digits: number,
  target?: { op: "≤" | "≥"; value: number },
];

/** Aligned lines: metric, value, baseline, value/baseline, target (ok / MISSED). */
export function table(header: string[], rows: Row[]): string[] {
  const fmt = (x: number, unit: string, digits: number) => (Number.isFinite(x) ? `${x.toFixed(digits)} ${unit}` : "—");
  const cells = [header];
  for (const [metric, a, b, unit, digits, target] of rows) {
    const ratio =
      Number.isFinite(a) && Number.isFinite(b) && b !== 0
        ? `${(a / b).toFixed(a / b >= 10 ? 0 : a / b >= 1 ? 1 : 2)}x`
        : "";
    const met = target ? (target.op === "≤" ? a <= target.value : a >= target.value) : null;
    const targetText = target ? `${target.op} ${target.value} ${unit}  ${met ? "ok" : "MISSED"}` : "";
    cells.push([metric, fmt(a, unit, digits), fmt(b, unit, digits), ratio, targetText]);
  }
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => [...(r[c] ?? "")].length)));
  const pad = (text: string, w: number, right: boolean) => {
    const fill = " ".repeat(Math.max(0, w - [...text].length));
    return right ? fill + text : text + fill;
  };
  return cells.map((r) =>
    r
      .map((cell, c) => pad(cell, widths[c]!, c === 1 || c === 2 || c === 3))
      .join("   ")
      .trimEnd(),
  );
}
