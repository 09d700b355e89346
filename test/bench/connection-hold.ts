/**
 * @module test/bench/connection-hold
 * `bun test/bench/connection-hold.ts`: how long after its builder is ready a client learns
 * `active` from GetBuildKitConnection, in process (the builds service on a real SQLite file and
 * the real CA; a stand-in builder that becomes ready after a random 0.3–1.5 s, telling waiters
 * as the builder service does). Held: the call is held open and woken (what the Connect route
 * does, 5 s holds). Baseline, in the same run and interleaved: unheld, the client sleeping the
 * pending answer's wait_ms (1000 ms) between asks, as the depot CLI did before. The full cold
 * start over HTTP and a real builder is the builds bench's. A report: nothing fails on timing.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Actor } from "../../src/auth/actor.ts";
import { tokensServiceFactory } from "../../src/auth/api-tokens.ts";
import { auditServiceFactory } from "../../src/auth/audit.ts";
import { buildsServiceFactory } from "../../src/builds/service.ts";
import { applyMigrations, openDatabase } from "../../src/db/index.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { orgsServiceFactory } from "../../src/orgs/service.ts";
import { pkiServiceFactory } from "../../src/pki/index.ts";
import { projectsServiceFactory } from "../../src/projects/service.ts";
import { createSealer } from "../../src/secrets/index.ts";
import { intOpt, table, type Row } from "./report.ts";

const { values: opts } = parseArgs({ args: Bun.argv.slice(2), options: { runs: { type: "string", default: "8" } } });
const RUNS = intOpt("runs", opts.runs!, 1, 100);
const HOLD_MS = 5_000;

const work = mkdtempSync(join(tmpdir(), "slipway-bench-hold-"));
try {
  const db = openDatabase(join(work, "bench.db"));
  applyMigrations(db);
  const at = new Date().toISOString();
  db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES ('org_b', 'bench', 'bench', ?)").run(at);
  db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES ('prj_b', 'org_b', 'bench', ?)").run(at);
  const pki = pkiServiceFactory({
    db,
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    applianceId: "bench",
  });
  await pki.ensureHierarchy(["server", "build-client"]);
  const audit = auditServiceFactory({ db });
  const orgs = orgsServiceFactory({ db, audit });

  /** The stand-in builder: ready from `readyAt` on (ms, performance clock); waiters woken then. */
  let readyAt = Number.POSITIVE_INFINITY;
  const waiters = new Set<() => void>();
  const builds = buildsServiceFactory({
    db,
    projects: projectsServiceFactory({ db, audit, orgs }),
    tokens: tokensServiceFactory({ db, audit }),
    pki,
    builders: {
      request: async (ref) =>
        performance.now() >= readyAt
          ? {
              state: "ready",
              builder: {
                builderId: "b",
                projectId: ref.projectId,
                platform: ref.platform,
                runtime: "dockerd",
                socketPath: "/run/b.sock",
                emulated: false,
              },
            }
          : { state: "starting" },
      release: () => {},
      ready: () => null,
      whenChanged: (_ref, signal) =>
        new Promise<void>((resolve) => {
          const wake = () => {
            waiters.delete(wake);
            resolve();
          };
          waiters.add(wake);
          signal.addEventListener("abort", wake, { once: true });
        }),
    },
    router: { buildEnded: () => {} },
    audit,
    log: silentLogger,
    publicUrl: "https://bench.invalid",
    buildEndpoint: { endpoint: "tcp://bench.invalid:8444", serverName: "bench.invalid" },
    healthTimeoutMs: 600_000,
    logMaxBytes: 1024,
  });
  const actor: Actor = { kind: "project-token", tokenId: "tok_b", orgId: "org_b", projectId: "prj_b" };

  /** One build: its builder ready after 0.3–1.5 s; returns ms from ready to the client holding `active`. */
  async function once(held: boolean): Promise<number> {
    const { build } = builds.create(actor, "prj_b", []);
    const startMs = 300 + Math.random() * 1200;
    readyAt = Number.POSITIVE_INFINITY;
    // Ready when the timer fires (not when it was due: a late timer on a busy machine is no client's delay).
    const timer = setTimeout(() => {
      readyAt = performance.now();
      for (const wake of [...waiters]) wake();
    }, startMs);
    // Active includes the build's certificate (key and signature), as it does for a real client.
    for (;;) {
      const r = await builds.connection(actor, build.id, "linux/amd64", held ? { ms: HOLD_MS } : {});
      if (r.kind === "active") break;
      await Bun.sleep(r.waitMs);
    }
    const late = performance.now() - readyAt;
    clearTimeout(timer);
    builds.finish(actor, build.id, { kind: "success" });
    return late;
  }

  const heldMs: number[] = [];
  const polledMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    heldMs.push(await once(true));
    polledMs.push(await once(false));
  }
  const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const max = (xs: number[]) => Math.max(...xs);
  const rows: Row[] = [
    ["active after ready, p50 (held vs polled)", p50(heldMs), p50(polledMs), "ms", 1, { op: "≤", value: 50 }],
    ["active after ready, max (held vs polled)", max(heldMs), max(polledMs), "ms", 1, { op: "≤", value: 50 }],
  ];
  console.log(`GetBuildKitConnection: ready → active, ${RUNS} interleaved runs each (in process)`);
  for (const line of table(["metric", "held", "polled (baseline)", "ratio", "target"], rows)) console.log(line);
  db.close();
} finally {
  rmSync(work, { recursive: true, force: true });
}
