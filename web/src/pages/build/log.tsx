/**
 * @module web/pages/build/log
 * A build's log as it streams: lines kept in one append-only array, rendered in blocks of a few
 * hundred lines that re-render only when they change (and that the browser skips laying out
 * while off screen), so a 10,000-line log stays smooth. Text is always text (a line holding
 * `<b>` shows the characters). Search highlights and counts matches, with next and previous.
 */
import type { LogLineView } from "../../../../src/builds/models.ts";
import { Component } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

const BLOCK = 250;

type Match = { line: number; at: number };

function Highlighted(props: { text: string; query: string; current: number }) {
  if (!props.query) return <>{props.text}</>;
  const parts = [];
  const lower = props.text.toLowerCase();
  let from = 0;
  let n = 0;
  for (let i = lower.indexOf(props.query); i >= 0; i = lower.indexOf(props.query, i + props.query.length)) {
    parts.push(props.text.slice(from, i));
    parts.push(
      <mark key={i} class={n === props.current ? "current" : undefined}>
        {props.text.slice(i, i + props.query.length)}
      </mark>,
    );
    from = i + props.query.length;
    n++;
  }
  parts.push(props.text.slice(from));
  return <>{parts}</>;
}

type BlockProps = {
  lines: LogLineView[];
  start: number;
  count: number;
  query: string;
  /** The current match within this block: [line, nth match in that line], or null. */
  current: [number, number] | null;
};

/** A block of lines; it re-renders only when its own lines, its query or its current match change. */
class Block extends Component<BlockProps> {
  override shouldComponentUpdate(next: BlockProps) {
    const a = this.props;
    return !(
      a.start === next.start &&
      a.count === next.count &&
      a.query === next.query &&
      String(a.current) === String(next.current)
    );
  }
  override render() {
    const props = this.props;
    const rows = [];
    for (let i = props.start; i < props.start + props.count; i++) {
      const l = props.lines[i]!;
      rows.push(
        <div key={i} id={`log-line-${i + 1}`} class={l.stream === 2 ? "log-line stderr" : "log-line"}>
          <Highlighted
            text={l.text}
            query={props.query}
            current={props.current && props.current[0] === i ? props.current[1] : -1}
          />
        </div>,
      );
    }
    return <div class="log-block">{rows}</div>;
  }
}

export function LogView(props: { lines: LogLineView[]; length: number; live: boolean }) {
  const [input, setInput] = useState("");
  const query = input.trim().toLowerCase();
  const [index, setIndex] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const matches = useMemo(() => {
    const out: Match[] = [];
    if (!query) return out;
    for (let i = 0; i < props.length; i++) {
      const lower = props.lines[i]!.text.toLowerCase();
      for (let at = lower.indexOf(query); at >= 0; at = lower.indexOf(query, at + query.length))
        out.push({ line: i, at });
    }
    return out;
  }, [query, props.length, props.lines]);
  const current = matches.length > 0 ? Math.min(index, matches.length - 1) : -1;
  const currentLine = current >= 0 ? matches[current]!.line : -1;
  const nthInLine = current >= 0 ? matches.slice(0, current).filter((m) => m.line === currentLine).length : 0;

  // Keep the newest lines in view while the reader is at the bottom.
  useEffect(() => {
    const el = box.current;
    if (el && follow && currentLine < 0) el.scrollTop = el.scrollHeight;
  }, [props.length, follow, currentLine]);
  useEffect(() => {
    if (currentLine >= 0) document.getElementById(`log-line-${currentLine + 1}`)?.scrollIntoView({ block: "center" });
  }, [currentLine, current]);

  const step = (d: number) => matches.length > 0 && setIndex((current + d + matches.length) % matches.length);
  // A block with no match is given no query, so a search re-renders only the blocks it highlights
  // in (and those it stops highlighting in): a rare word in a long log touches a block or two.
  const hit = useMemo(() => new Set(matches.map((m) => Math.floor(m.line / BLOCK))), [matches]);
  const blocks = [];
  for (let start = 0; start < props.length; start += BLOCK) {
    const count = Math.min(BLOCK, props.length - start);
    blocks.push(
      <Block
        key={start}
        lines={props.lines}
        start={start}
        count={count}
        query={hit.has(start / BLOCK) ? query : ""}
        current={currentLine >= start && currentLine < start + count ? [currentLine, nthInLine] : null}
      />,
    );
  }
  return (
    <section aria-labelledby="log-title">
      <div class="log-head">
        <h2 id="log-title">Log</h2>
        <form
          class="log-search"
          onSubmit={(e) => {
            e.preventDefault();
            step(1);
          }}
        >
          <input
            type="search"
            aria-label="Search the log"
            placeholder="Search the log"
            value={input}
            onInput={(e) => {
              setInput((e.target as HTMLInputElement).value);
              setIndex(0);
            }}
          />
          <button type="button" onClick={() => step(-1)} disabled={matches.length === 0}>
            Previous match
          </button>
          <button type="button" onClick={() => step(1)} disabled={matches.length === 0}>
            Next match
          </button>
          <span class="log-count" role="status">
            {query ? (matches.length === 0 ? "No matches" : `${current + 1} of ${matches.length} matches`) : ""}
          </span>
        </form>
      </div>
      <div
        class="build-log"
        ref={box}
        // A scrolling box must take focus so keyboard users can scroll it (axe: scrollable-region-focusable).
        // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
        tabIndex={0}
        role="log"
        aria-label="Build log"
        aria-live="off"
        onScroll={(e) => {
          const el = e.currentTarget as HTMLDivElement;
          setFollow(el.scrollHeight - el.scrollTop - el.clientHeight < 40);
        }}
      >
        {props.length === 0 ? <p class="empty">{props.live ? "No log yet." : "No log."}</p> : blocks}
      </div>
      <p class="hint">
        {props.length} lines{props.live ? ", streaming" : ""}
      </p>
    </section>
  );
}
