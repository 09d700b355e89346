/**
 * @module db/checkpointer
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever write
 * crosses 1,000 WAL pages, copying pages and fsyncing on the server's only thread: measured, a
 * 4–7 ms stall every ~300 certificate issuances. Serve turns the automatic checkpoint off on its
 * connection and lets a Worker with its own connection run PASSIVE checkpoints (they never block
 * writers) on an interval. The worker's source is a string run from a Blob URL, so the compiled
 * binary needs no second entrypoint.
 *
 * A PASSIVE checkpoint in another thread never catches up with a writer that never pauses: the
 * frames written while it runs stay behind, SQLite restarts the WAL only after a checkpoint that
 * left none, and with no checkpoint of its own the server's WAL grew without bound (617 MB after
 * 4,000 build admissions, every read slower for searching it). So the server's connection keeps
 * SQLite's automatic checkpoint at `maxWalFrames` (16,000 frames, 64 MiB) as a safety net: the
 * worker keeps the WAL far below that whenever writes pause, and under writes that never pause
 * the server's own checkpoint, having only what the worker has not copied yet, completes and the
 * WAL starts over.
 */
import type { Database } from "bun:sqlite";

const WORKER_SOURCE = `
import { Database } from "bun:sqlite";
let db;
self.onmessage = (e) => {
  const m = e.data;
  if (m.type === "open") {
    db = new Database(m.file, { strict: true });
    db.run("PRAGMA busy_timeout = " + m.busyTimeoutMs);
    db.run("PRAGMA wal_autocheckpoint = 0");
    postMessage({ type: "ready" });
  } else if (m.type === "checkpoint") {
    try {
      const r = db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
      postMessage({ type: "checkpointed", busy: r.busy, log: r.log, checkpointed: r.checkpointed });
    } catch (err) {
      postMessage({ type: "error", message: String(err && err.message || err) });
    }
  } else if (m.type === "close") {
    try { db && db.close(); } finally { postMessage({ type: "closed" }); }
  }
};
`;

export interface Checkpointer {
  /** Runs one checkpoint now and resolves when the worker has done it (tests, shutdown). */
  checkpointNow(): Promise<{ log: number; checkpointed: number }>;
  stop(): Promise<void>;
}

export interface CheckpointerOptions {
  intervalMs?: number;
  /** `db` checkpoints by itself past this many WAL frames (4 KiB pages): the bound under constant writes. */
  maxWalFrames?: number;
  busyTimeoutMs?: number;
  onError?: (message: string) => void;
}

/**
 * Moves `db`'s checkpoints to a worker. `db` keeps working if the worker fails: it is told to
 * checkpoint automatically again, so the WAL can never grow without bound.
 */
export async function startCheckpointer(
  db: Database,
  file: string,
  opts: CheckpointerOptions = {},
): Promise<Checkpointer> {
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
  const worker = new Worker(url);
  type Reply = { type: string; message?: string; log?: number; checkpointed?: number };
  const waiters: ((r: Reply) => void)[] = [];
  let failed = false;
  const fail = (message: string) => {
    if (failed) return;
    failed = true;
    db.run("PRAGMA wal_autocheckpoint = 1000");
    opts.onError?.(message);
  };
  worker.onmessage = (e: MessageEvent<Reply>) => {
    if (e.data.type === "error") opts.onError?.(e.data.message ?? "checkpoint failed");
    waiters.shift()?.(e.data);
  };
  worker.onerror = (e) => fail(e.message);
  const ask = (msg: object) =>
    new Promise<Reply>((resolve) => {
      waiters.push(resolve);
      worker.postMessage(msg);
    });

  const ready = await Promise.race([
    ask({ type: "open", file, busyTimeoutMs: opts.busyTimeoutMs ?? 5000 }),
    Bun.sleep(5000).then(() => null),
  ]);
  URL.revokeObjectURL(url);
  if (ready?.type !== "ready") {
    worker.terminate();
    throw new Error("the WAL checkpoint worker did not start");
  }
  // The safety net, far above what the worker leaves behind a writer that pauses now and then.
  db.run(`PRAGMA wal_autocheckpoint = ${opts.maxWalFrames ?? 16_000}`);
  // A WAL that did grow (a burst of writes) is cut back to this size when it starts over.
  db.run("PRAGMA journal_size_limit = 67108864");

  let stopping = false;
  let inFlight: Promise<Reply> | null = null;
  let lastCheckpointed = -1;
  const checkpoint = (): Promise<Reply> =>
    (inFlight ??= ask({ type: "checkpoint" }).then((r) => {
      inFlight = null;
      const done = r.checkpointed ?? 0;
      // Writes came in during the pass: go again at once, so each pass only has what was written
      // during the one before and a pause of the writer is enough to finish. Only while passes
      // make progress: one held back by a long reader waits for the interval instead of spinning.
      const progressed = done !== lastCheckpointed;
      lastCheckpointed = done;
      if (!failed && !stopping && r.type === "checkpointed" && done < (r.log ?? 0) && progressed) void checkpoint();
      return r;
    }));
  const timer = setInterval(() => void (failed || checkpoint()), opts.intervalMs ?? 1000);
  timer.unref?.();

  return {
    async checkpointNow() {
      const r = await checkpoint();
      return { log: r.log ?? 0, checkpointed: r.checkpointed ?? 0 };
    },
    async stop() {
      stopping = true;
      clearInterval(timer);
      if (!failed) {
        await inFlight;
        await Promise.race([ask({ type: "close" }), Bun.sleep(2000)]);
      }
      worker.terminate();
      db.run("PRAGMA wal_autocheckpoint = 1000");
    },
  };
}
