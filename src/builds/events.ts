/**
 * @module builds/events
 * The builds service's in-process publisher: what changed about a build (its row, a step, log
 * lines) goes to whoever follows that build, its project or its organization right now. Nothing
 * is queued for absent listeners: a follower reads the stored state when it starts and then gets
 * what changes (the API's Server-Sent Events routes do exactly that). One process, one appliance:
 * no broker needed.
 */

/** What the publisher needs of a build row to route it (the service's BuildRow). */
export interface RoutedBuild {
  id: string;
  project_id: string;
  org_id: string;
}

export interface StepRow {
  digest: string;
  name: string;
  cached: number;
  started_at: string | null;
  completed_at: string | null;
  error: string | null;
}

/** One log line as followers see it; `id` orders lines (chunk id, line within the chunk). */
export interface LogLine {
  id: string;
  vertex: string;
  stream: number;
  at: string;
  text: string;
}

export type BuildEvent<B extends RoutedBuild = RoutedBuild> =
  | { kind: "build"; build: B }
  | { kind: "step"; build: B; step: StepRow }
  | { kind: "log"; build: B; line: LogLine };

/** What a follower follows: one build (everything), or a project's or organization's builds (their rows). */
export type Topic = { build: string } | { project: string } | { org: string };

export type BuildEvents<B extends RoutedBuild = RoutedBuild> = ReturnType<typeof buildEventsFactory<B>>;

const keyOf = (t: Topic) => ("build" in t ? `b:${t.build}` : "project" in t ? `p:${t.project}` : `o:${t.org}`);

export interface LogChunk {
  id: number;
  vertex: string;
  stream: number;
  at: string;
  data: Uint8Array;
}

/**
 * Stored chunks → lines. BuildKit cuts output wherever its buffer ends, so a line may span
 * chunks: the unfinished end of a step's output waits for that step's next chunk. A line's id is
 * `chunk.n` (the chunk it ends in, its index among the lines ending there), so ids only grow and
 * replay and live agree. `flush` ends what is left (the build ended without a last newline).
 */
export function lineSplitter() {
  const tails = new Map<string, { text: string; at: string; vertex: string; stream: number; id: string }>();
  const decoder = new TextDecoder();
  return {
    push(chunk: LogChunk): LogLine[] {
      const key = `${chunk.stream}|${chunk.vertex}`;
      const parts = ((tails.get(key)?.text ?? "") + decoder.decode(chunk.data)).split("\n");
      const tail = parts.pop()!;
      if (tail)
        tails.set(key, {
          text: tail,
          at: chunk.at,
          vertex: chunk.vertex,
          stream: chunk.stream,
          id: `${chunk.id}.${parts.length}`,
        });
      else tails.delete(key);
      return parts.map((p, i) => ({
        id: `${chunk.id}.${i}`,
        vertex: chunk.vertex,
        stream: chunk.stream,
        at: chunk.at,
        text: p.replace(/\r$/, ""),
      }));
    },
    flush(): LogLine[] {
      const out = [...tails.values()].map((t) => ({
        id: t.id,
        vertex: t.vertex,
        stream: t.stream,
        at: t.at,
        text: t.text,
      }));
      tails.clear();
      return out.sort((a, b) => compareLineIds(a.id, b.id));
    },
  };
}

export function compareLineIds(a: string, b: string): number {
  const [ac, al] = parseLineId(a);
  const [bc, bl] = parseLineId(b);
  return ac - bc || al - bl;
}

/** `Last-Event-ID` as chunkLines made it → [chunk id, line index]; anything else: from the start. */
export function parseLineId(id: string | null | undefined): [number, number] {
  const m = /^(\d{1,15})\.(\d{1,9})$/.exec(id ?? "");
  return m ? [Number(m[1]), Number(m[2])] : [0, -1];
}

export function buildEventsFactory<B extends RoutedBuild>() {
  const followers = new Map<string, Set<(e: BuildEvent<B>) => void>>();

  return {
    /** Calls `listener` for each event of `topic` until the returned function is called. */
    subscribe(topic: Topic, listener: (e: BuildEvent<B>) => void): () => void {
      const key = keyOf(topic);
      let set = followers.get(key);
      if (!set) followers.set(key, (set = new Set()));
      const entry = (e: BuildEvent<B>) => listener(e);
      set.add(entry);
      return () => {
        const s = followers.get(key);
        if (!s) return;
        s.delete(entry);
        if (s.size === 0) followers.delete(key);
      };
    },

    /** Build rows reach the build's, its project's and its organization's followers; steps and
     * log lines only the build's. A listener that throws is its own problem, not the publisher's. */
    publish(e: BuildEvent<B>): void {
      const keys =
        e.kind === "build"
          ? [`b:${e.build.id}`, `p:${e.build.project_id}`, `o:${e.build.org_id}`]
          : [`b:${e.build.id}`];
      for (const key of keys)
        for (const listener of [...(followers.get(key) ?? [])]) {
          try {
            listener(e);
          } catch {
            // a follower's failure (a closed stream) must not stop the build's writer
          }
        }
    },

    /** How many follow now (all topics): a stream that ended must leave none behind. */
    followerCount(): number {
      let n = 0;
      for (const s of followers.values()) n += s.size;
      return n;
    },
  };
}
