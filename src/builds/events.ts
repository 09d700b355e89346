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

/** A stored chunk as lines (BuildKit sends lines; a chunk's trailing newline ends its last line). */
export function chunkLines(chunk: {
  id: number;
  vertex: string;
  stream: number;
  at: string;
  data: Uint8Array;
}): LogLine[] {
  const text = new TextDecoder().decode(chunk.data);
  const parts = text.split("\n");
  if (parts.length > 1 && parts.at(-1) === "") parts.pop();
  return parts.map((p, i) => ({
    id: `${chunk.id}.${i}`,
    vertex: chunk.vertex,
    stream: chunk.stream,
    at: chunk.at,
    text: p.replace(/\r$/, ""),
  }));
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
