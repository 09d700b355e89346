/**
 * @module web/pages/builds/charts
 * The builds' charts, drawn as SVG by the UI: duration and cache-hit ratio of the last builds,
 * and builds per day. Each has a title, an aria-label summarising it and a visually hidden
 * table with its figures (what a screen reader reads instead of the drawing).
 */
import type { ComponentChildren } from "preact";
import type { BuildStatsView } from "../../../../src/builds/models.ts";
import { duration } from "../../components/format.tsx";
import { Loaded, useApi } from "../../data.tsx";

const W = 300;
const H = 120;
const PAD = 18;

export function BuildCharts(props: { api: string }) {
  const stats = useApi<BuildStatsView>(`${props.api}/stats?days=30&last=50`);
  return (
    <section aria-labelledby="charts-title">
      <h2 id="charts-title">Charts</h2>
      <Loaded from={stats}>
        {(s) => (
          <div class="charts">
            <DurationChart stats={s} />
            <CacheChart stats={s} />
            <PerDayChart stats={s} />
          </div>
        )}
      </Loaded>
    </section>
  );
}

function Chart(props: {
  id: string;
  title: string;
  summary: string;
  children: ComponentChildren;
  table: { head: string[]; rows: (string | number)[][] };
}) {
  return (
    <figure class="chart" aria-labelledby={`${props.id}-title`}>
      <h3 id={`${props.id}-title`}>{props.title}</h3>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${props.title}: ${props.summary}`}>
        <line class="axis" x1={PAD} y1={H - PAD} x2={W} y2={H - PAD} />
        <line class="axis" x1={PAD} y1={0} x2={PAD} y2={H - PAD} />
        {props.children}
      </svg>
      <figcaption>{props.summary}</figcaption>
      {/* A table ignores a small width: the hidden box around it holds it. */}
      <div class="visually-hidden">
        <table>
          <caption>{props.title}</caption>
          <thead>
            <tr>
              {props.table.head.map((h) => (
                <th key={h} scope="col">
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {props.table.rows.map((r, i) => (
              <tr key={i}>
                {r.map((c, j) => (
                  <td key={j}>{c}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}

/** A polyline through `values` (null: a gap), scaled to the plot. */
function points(values: (number | null)[], max: number): string {
  const step = values.length > 1 ? (W - PAD - 4) / (values.length - 1) : 0;
  return values
    .map((v, i) =>
      v === null
        ? null
        : `${(PAD + 2 + i * step).toFixed(1)},${(H - PAD - (v / (max || 1)) * (H - PAD - 6)).toFixed(1)}`,
    )
    .filter((p) => p !== null)
    .join(" ");
}

function DurationChart({ stats }: { stats: BuildStatsView }) {
  const values = stats.recent.map((r) => r.duration_seconds);
  const known = values.filter((v): v is number => v !== null);
  const max = Math.max(0, ...known);
  const avg = known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
  const summary = known.length
    ? `${known.length} builds, average ${duration(avg! * 1000)}, longest ${duration(max * 1000)}, last ${duration((known.at(-1) ?? 0) * 1000)}`
    : "no ended builds yet";
  return (
    <Chart
      id="chart-duration"
      title="Build duration, last builds"
      summary={summary}
      table={{
        head: ["Build", "Status", "Duration"],
        rows: stats.recent.map((r) => [
          r.id,
          r.status,
          r.duration_seconds === null ? "—" : duration(r.duration_seconds * 1000),
        ]),
      }}
    >
      <text x={PAD + 2} y={10}>
        {duration(max * 1000)}
      </text>
      {known.length > 0 && <polyline class="line" points={points(values, max)} />}
    </Chart>
  );
}

function CacheChart({ stats }: { stats: BuildStatsView }) {
  const values = stats.recent.map((r) => r.cache_hit_ratio);
  const known = values.filter((v): v is number => v !== null);
  const pct = (v: number) => `${Math.round(v * 100)} %`;
  const summary = known.length
    ? `${known.length} builds with steps, average ${pct(known.reduce((a, b) => a + b, 0) / known.length)} of steps cached, last ${pct(known.at(-1)!)}`
    : "no build with steps yet";
  return (
    <Chart
      id="chart-cache"
      title="Cache-hit ratio, last builds"
      summary={summary}
      table={{
        head: ["Build", "Cached steps", "Ratio"],
        rows: stats.recent.map((r) => [
          r.id,
          `${r.cached_step_count}/${r.step_count}`,
          r.cache_hit_ratio === null ? "—" : pct(r.cache_hit_ratio),
        ]),
      }}
    >
      <text x={PAD + 2} y={10}>
        100 %
      </text>
      {known.length > 0 && <polyline class="line" points={points(values, 1)} />}
    </Chart>
  );
}

function PerDayChart({ stats }: { stats: BuildStatsView }) {
  const days = stats.per_day;
  const max = Math.max(1, ...days.map((d) => d.finished + d.failed));
  const finished = days.reduce((a, d) => a + d.finished, 0);
  const failed = days.reduce((a, d) => a + d.failed, 0);
  const slot = (W - PAD - 2) / Math.max(1, days.length);
  const scale = (n: number) => (n / max) * (H - PAD - 6);
  return (
    <Chart
      id="chart-per-day"
      title={`Builds per day, last ${days.length} days`}
      summary={`${finished} finished and ${failed} failed in ${days.length} days; busiest day ${max === 1 && finished + failed === 0 ? "none" : `${max} builds`}`}
      table={{ head: ["Day", "Finished", "Failed"], rows: days.map((d) => [d.day, d.finished, d.failed]) }}
    >
      <text x={PAD + 2} y={10}>
        {max}
      </text>
      {days.map((d, i) => {
        const x = PAD + 2 + i * slot;
        const w = Math.max(1, slot - 1);
        const ok = scale(d.finished);
        const bad = scale(d.failed);
        return (
          <g key={d.day}>
            {d.finished > 0 && <rect class="bar" x={x} y={H - PAD - ok} width={w} height={ok} />}
            {d.failed > 0 && <rect class="bar failed" x={x} y={H - PAD - ok - bad} width={w} height={bad} />}
          </g>
        );
      })}
    </Chart>
  );
}
