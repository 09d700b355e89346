/**
 * @module db/checkpointer
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever write
 * crosses 1,000 WAL pages, copying pages and fsyncing on the server's only thread: measured, a
 * 4–7 ms stall every ~300 certificate issuances. Serve turns the automatic checkpoint off on its
 * connection and lets a Worker with its own connection run PASSIVE checkpoints (they never block
 * writers) on an interval. The worker's source is a string run from a Blob URL, so the compiled
 * binary needs no second entrypoint.
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
  busyTimeoutMs?: number;
  onError?: (message: string) => void;
}

/**
 * Moves `db`'s checkpoints to a worker. `db` keeps working if the worker fails: it is told to
 * checkpoint automatically again, so the WAL can never grow without bound.
 */
export async function startCheckpointer(db: Database, file: string, opts: CheckpointerOptions = {}): Promise<Checkpointer> {
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

  const ready = await Promise.race([ask({ type: "open", file, busyTimeoutMs: opts.busyTimeoutMs ?? 5000 }), Bun.sleep(5000).then(() => null)]);
  URL.revokeObjectURL(url);
  if (!ready || ready.type !== "ready") {
    worker.terminate();
    throw new Error("the WAL checkpoint worker did not start");
  }
  db.run("PRAGMA wal_autocheckpoint = 0");

  let inFlight: Promise<Reply> | null = null;
  const checkpoint = () => (inFlight ??= ask({ type: "checkpoint" }).finally(() => (inFlight = null)));
  const timer = setInterval(() => void (failed || checkpoint()), opts.intervalMs ?? 1000);
  timer.unref?.();

  return {
    async checkpointNow() {
      const r = await checkpoint();
      return { log: r.log ?? 0, checkpointed: r.checkpointed ?? 0 };
    },
    async stop() {
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
