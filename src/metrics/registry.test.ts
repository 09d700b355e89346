/**
 * @module metrics/registry.test
 * Covers MetricsRegistry rendering in the Prometheus text exposition format: HELP/TYPE lines,
 * counters with labels (order-insensitive series), label value escaping, histograms with
 * cumulative buckets, +Inf, _sum and _count, scrape-time gauges, and the process series.
 */
import { describe, expect, test } from "bun:test";
import { MetricsRegistry, registerProcessMetrics } from "./registry.ts";

/** Sample lines (not comments) of a rendering, as "name{labels}" → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe("MetricsRegistry", () => {
  test("a counter renders HELP, TYPE and one line per label set", () => {
    const m = new MetricsRegistry();
    const c = m.counter("slipway_http_requests_total", "HTTP requests served");
    c.inc({ method: "GET", status: "200" });
    c.inc({ status: "200", method: "GET" }, 2); // same series, other key order
    c.inc({ method: "POST", status: "500" });
    expect(c.get({ status: "200", method: "GET" })).toBe(3);
    expect(c.get({ method: "PUT" })).toBe(0);
    expect(m.render()).toBe(
      [
        "# HELP slipway_http_requests_total HTTP requests served",
        "# TYPE slipway_http_requests_total counter",
        'slipway_http_requests_total{method="GET",status="200"} 3',
        'slipway_http_requests_total{method="POST",status="500"} 1',
        "",
      ].join("\n"),
    );
  });

  test("an unlabelled counter has no braces; an untouched one renders only HELP and TYPE", () => {
    const m = new MetricsRegistry();
    m.counter("a_total", "A").inc();
    m.counter("b_total", "B");
    expect(m.render()).toBe(
      "# HELP a_total A\n# TYPE a_total counter\na_total 1\n# HELP b_total B\n# TYPE b_total counter\n",
    );
  });

  test("label values escape backslash, double quote and newline", () => {
    const m = new MetricsRegistry();
    m.counter("x_total", "X").inc({ path: 'a"b\\c\nd' });
    const line = m.render().split("\n")[2];
    expect(line).toBe('x_total{path="a\\"b\\\\c\\nd"} 1');
    // The rendering stays one sample per line.
    expect(m.render().split("\n").length).toBe(4);
  });

  test("a histogram renders cumulative buckets, +Inf, _sum and _count", () => {
    const m = new MetricsRegistry();
    const h = m.histogram("slipway_request_seconds", "Request duration", [0.1, 0.5, 1]);
    for (const v of [0.05, 0.1, 0.3, 0.7, 2]) h.observe(v, { route: "/x" });
    h.observe(0.2, { route: "/y" });
    const text = m.render();
    expect(text).toContain(
      "# HELP slipway_request_seconds Request duration\n# TYPE slipway_request_seconds histogram\n",
    );
    const s = samples(text);
    expect(s.get('slipway_request_seconds_bucket{route="/x",le="0.1"}')).toBe(2); // 0.1 is inclusive
    expect(s.get('slipway_request_seconds_bucket{route="/x",le="0.5"}')).toBe(3);
    expect(s.get('slipway_request_seconds_bucket{route="/x",le="1"}')).toBe(4);
    expect(s.get('slipway_request_seconds_bucket{route="/x",le="+Inf"}')).toBe(5);
    expect(s.get('slipway_request_seconds_sum{route="/x"}')).toBeCloseTo(3.15, 10);
    expect(s.get('slipway_request_seconds_count{route="/x"}')).toBe(5);
    expect(s.get('slipway_request_seconds_bucket{route="/y",le="0.1"}')).toBe(0);
    expect(s.get('slipway_request_seconds_bucket{route="/y",le="+Inf"}')).toBe(1);
    expect(s.get('slipway_request_seconds_count{route="/y"}')).toBe(1);
    // Buckets never decrease, and the +Inf bucket equals _count.
    const xs = [...s].filter(([k]) => k.startsWith('slipway_request_seconds_bucket{route="/x"')).map(([, v]) => v);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
  });

  test("an unlabelled histogram has only the le label on buckets", () => {
    const m = new MetricsRegistry();
    m.histogram("h", "H", [1]).observe(3);
    expect(m.render()).toBe(
      '# HELP h H\n# TYPE h histogram\nh_bucket{le="1"} 0\nh_bucket{le="+Inf"} 1\nh_sum 3\nh_count 1\n',
    );
  });

  test("a gauge is computed at every scrape", () => {
    const m = new MetricsRegistry();
    let n = 1;
    m.gauge("slipway_builders", "Running builders", () => [
      { labels: { platform: "linux/amd64" }, value: n },
      { value: n * 10 },
    ]);
    expect(m.render()).toBe(
      '# HELP slipway_builders Running builders\n# TYPE slipway_builders gauge\nslipway_builders{platform="linux/amd64"} 1\nslipway_builders 10\n',
    );
    n = 2;
    expect(samples(m.render()).get('slipway_builders{platform="linux/amd64"}')).toBe(2);
  });

  test("every line of a full rendering is a comment or a valid sample", () => {
    const m = new MetricsRegistry();
    registerProcessMetrics(m, "1.2.3");
    m.counter("c_total", "C").inc({ a: "1" });
    m.histogram("h_seconds", "H", [0.5]).observe(0.1, { b: "2" });
    const text = m.render();
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.trimEnd().split("\n");
    for (const line of lines) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? -?[0-9.e+]+)$/,
      );
    }
    const s = samples(text);
    expect(s.get('slipway_build_info{version="1.2.3"}')).toBe(1);
    expect(s.get("process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(s.get("process_start_time_seconds")).toBeLessThanOrEqual(Date.now() / 1000);
  });
});
