/**
 * @module web/components/format
 * How times, durations, sizes and statuses read in the UI, in one place.
 */

/** "3 min ago", with the exact time as the element's title and datetime. */
export function Ago(props: { at: string | null | undefined }) {
  if (!props.at) return <span>—</span>;
  const d = new Date(props.at);
  return (
    <time dateTime={props.at} title={d.toLocaleString()}>
      {ago(d)}
    </time>
  );
}

export function ago(d: Date, now = Date.now()): string {
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Milliseconds as "850 ms", "12.3 s", "4 min 05 s". */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${String(Math.round((ms % 60_000) / 1000)).padStart(2, "0")} s`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A build's (or check's) status as a labelled badge; colour is never the only signal. */
export function Status(props: { status: string }) {
  return <span class={`status status-${props.status}`}>{props.status}</span>;
}
