/**
 * @module metrics/registry
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format. Capabilities register their own series; gauges may be computed at scrape.
 */

type Labels = Record<string, string>;

interface Series {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const fmtLabels = (l: Labels) => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${esc(v)}"`).join(",")}}` : "";
};
const key = (l: Labels) => JSON.stringify(Object.entries(l).sort());

export class Counter {
  private values = new Map<string, { labels: Labels; value: number }>();
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    const v = this.values.get(k);
    if (v) v.value += by;
    else this.values.set(k, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels))?.value ?? 0;
  }
  /** @internal */
  lines(name: string): string[] {
    return [...this.values.values()].map((v) => `${name}${fmtLabels(v.labels)} ${v.value}`);
  }
}

export class Histogram {
  private values = new Map<string, { labels: Labels; buckets: number[]; sum: number; count: number }>();
  constructor(readonly bounds: number[]) {}
  observe(value: number, labels: Labels = {}): void {
    const k = key(labels);
    let v = this.values.get(k);
    if (!v) this.values.set(k, (v = { labels, buckets: this.bounds.map(() => 0), sum: 0, count: 0 }));
    this.bounds.forEach((b, i) => {
      if (value <= b) v!.buckets[i]!++;
    });
    v.sum += value;
    v.count++;
  }
  /** @internal */
  lines(name: string): string[] {
    const out: string[] = [];
    for (const v of this.values.values()) {
      for (const [i, b] of this.bounds.entries()) {
        out.push(`${name}_bucket${fmtLabels({ ...v.labels, le: String(b) })} ${v.buckets[i]}`);
      }
      out.push(`${name}_bucket${fmtLabels({ ...v.labels, le: "+Inf" })} ${v.count}`);
      out.push(`${name}_sum${fmtLabels(v.labels)} ${v.sum}`);
      out.push(`${name}_count${fmtLabels(v.labels)} ${v.count}`);
    }
    return out;
  }
}

export class MetricsRegistry {
  private series: Series[] = [];

  counter(name: string, help: string): Counter {
    const c = new Counter();
    this.series.push({ name, help, type: "counter", render: () => c.lines(name) });
    return c;
  }

  histogram(name: string, help: string, bounds: number[]): Histogram {
    const h = new Histogram(bounds);
    this.series.push({ name, help, type: "histogram", render: () => h.lines(name) });
    return h;
  }

  /** A gauge whose samples are computed when scraped. */
  gauge(name: string, help: string, collect: () => { labels?: Labels; value: number }[]): void {
    this.series.push({
      name,
      help,
      type: "gauge",
      render: () => collect().map((s) => `${name}${fmtLabels(s.labels ?? {})} ${s.value}`),
    });
  }

  render(): string {
    const out: string[] = [];
    for (const s of this.series) {
      out.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} ${s.type}`, ...s.render());
    }
    return `${out.join("\n")}\n`;
  }
}

/** Process-level series every Slipway server exposes. */
export function registerProcessMetrics(m: MetricsRegistry, version: string): void {
  const started = Date.now() / 1000;
  m.gauge("slipway_build_info", "Slipway version", () => [{ labels: { version }, value: 1 }]);
  m.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds", () => [
    { value: started },
  ]);
  m.gauge("process_resident_memory_bytes", "Resident memory size in bytes", () => [
    { value: process.memoryUsage().rss },
  ]);
  m.gauge("process_heap_bytes", "JavaScript heap in use, in bytes", () => [{ value: process.memoryUsage().heapUsed }]);
}
