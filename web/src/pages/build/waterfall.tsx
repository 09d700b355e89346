/**
 * @module web/pages/build/waterfall
 * A build's steps on one time axis: each step a bar from its start to its end (SVG, sizes as
 * attributes), cached steps and failed steps marked in words as well as colour.
 */
import type { StepView } from "../../../../src/builds/models.ts";
import { duration } from "../../components/format.tsx";

const WIDTH = 1000;

/** Steps by start time (those not started yet last, in the order they came). */
function byStart(steps: StepView[]): StepView[] {
  const at = (s: StepView) => (s.started_at ? Date.parse(s.started_at) : Number.POSITIVE_INFINITY);
  return steps
    .map((s, i) => [s, i] as const)
    .sort(([a, i], [b, j]) => at(a) - at(b) || i - j)
    .map(([s]) => s);
}

export function Waterfall(props: { steps: StepView[]; from: number | null; now: number }) {
  const steps = byStart(props.steps);
  const starts = props.steps.map((s) => (s.started_at ? Date.parse(s.started_at) : null)).filter((t) => t !== null);
  const t0 = Math.min(props.from ?? Number.POSITIVE_INFINITY, ...starts);
  const ends = props.steps.map((s) => (s.completed_at ? Date.parse(s.completed_at) : props.now));
  const t1 = Math.max(t0 + 1000, ...ends);
  const x = (t: number) => Math.round(((t - t0) / (t1 - t0)) * WIDTH);
  if (props.steps.length === 0) return <p class="empty">No steps yet.</p>;
  return (
    <ol class="build-waterfall" aria-label="Steps">
      {steps.map((s) => {
        const start = s.started_at ? Date.parse(s.started_at) : null;
        const end = s.completed_at ? Date.parse(s.completed_at) : null;
        const kind = s.error ? "error" : s.cached ? "cached" : end === null ? "running" : "done";
        const left = start === null ? 0 : x(start);
        const width = start === null ? 0 : Math.max(3, x(end ?? props.now) - left);
        return (
          <li key={s.digest} class={`step step-${kind}`}>
            <span class="step-name" title={s.name}>
              {s.name || s.digest}
            </span>
            <svg class="step-track" viewBox={`0 0 ${WIDTH} 10`} preserveAspectRatio="none" aria-hidden="true">
              <rect class="step-axis" x="0" y="0" width={WIDTH} height="10" />
              {start !== null && <rect class={`step-bar bar-${kind}`} x={left} y="1" width={width} height="8" />}
            </svg>
            <span class="step-time">
              {s.cached ? "cached" : s.error ? "error" : start === null ? "waiting" : end === null ? "running" : ""}
              {start !== null && !s.cached ? ` ${duration((end ?? props.now) - start)}` : ""}
            </span>
            {s.error && <p class="step-error">{s.error}</p>}
          </li>
        );
      })}
    </ol>
  );
}
