/**
 * @module builds/service
 * The build lifecycle: created → running → finished | failed | canceled | expired. A build asks
 * for a BuildKit connection per platform (held open while its builder starts, answered active
 * with a fresh per-build certificate the moment it is ready; pending when the hold runs out),
 * reports health every few seconds, streams BuildKit status (kept as
 * steps and capped logs) and finishes. Cancellation and the hard timeout reach the client as
 * `cancels_at` in the health answer; a build that stops reporting health expires. Every end
 * closes the build's connections at the build endpoint and lets its builders idle. A stopping
 * appliance admits no new builds and ends what is left as canceled, telling the client why.
 */
import type { Database } from "bun:sqlite";
import { actorLabel, type Actor } from "../auth/actor.ts";
import type { AuditService } from "../auth/audit.ts";
import { authorize, type Resource } from "../auth/policy.ts";
import type { TokensService } from "../auth/api-tokens.ts";
import type { BuilderStatus } from "../builders/index.ts";
import { normalizePlatform } from "../builders/runtimes.ts";
import { ConflictError, InvalidInputError, NotFoundError, PreconditionError, UnavailableError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Logger } from "../log/logger.ts";
import type { Pki } from "../pki/index.ts";
import type { ProjectsService } from "../projects/service.ts";
import type { RouteTarget } from "../router/index.ts";
import { buildEventsFactory, compareLineIds, lineSplitter, type LogLine, type StepRow, type Topic } from "./events.ts";
import { buildLogsFactory } from "./logs.ts";

export type BuildStatus = "created" | "running" | "finished" | "failed" | "canceled" | "expired";
const ACTIVE: ReadonlySet<BuildStatus> = new Set(["created", "running"]);

export interface BuildRow {
  id: string;
  project_id: string;
  org_id: string;
  status: BuildStatus;
  started_by: string;
  options: string;
  platforms: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  deadline_at: string;
  last_health_at: string | null;
  cancel_requested_at: string | null;
  cancel_requested_by: string | null;
  log_bytes: number;
  log_truncated: number;
}

/** A build in a list: its row and its step counts. */
export interface BuildListRow extends BuildRow {
  step_count: number;
  cached_step_count: number;
}

/** What a list of builds is narrowed to (validated by the API's models). */
export interface BuildFilter {
  status?: BuildStatus[];
  /** Only these projects (within those the caller may see). */
  projectIds?: string[];
  /** Who started them: a person, a token (organization or project), or a CI job. */
  startedBy?: "user" | "token" | "ci";
  /** Tokens CI jobs exchanged their OIDC token for (their builds are CI's, not a token's). */
  ciTokenIds?: string[];
  since?: string;
  until?: string;
}

/** The WHERE clause of a filtered list (every value bound, never spliced). */
function filterSql(projectIds: readonly string[], f: BuildFilter): { sql: string[]; args: (string | number)[] } {
  const scope = f.projectIds ? projectIds.filter((id) => f.projectIds!.includes(id)) : projectIds;
  const sql = ["project_id IN (SELECT value FROM json_each(?))"];
  const args: (string | number)[] = [JSON.stringify(scope)];
  if (f.status?.length) {
    sql.push("status IN (SELECT value FROM json_each(?))");
    args.push(JSON.stringify(f.status));
  }
  const ciTokens = JSON.stringify((f.ciTokenIds ?? []).map((id) => `token:${id}`));
  if (f.startedBy === "user") sql.push("started_by LIKE 'user:%'");
  if (f.startedBy === "ci") {
    sql.push("(started_by LIKE 'oidc:%' OR started_by IN (SELECT value FROM json_each(?)))");
    args.push(ciTokens);
  }
  if (f.startedBy === "token") {
    sql.push("started_by LIKE 'token:%' AND started_by NOT IN (SELECT value FROM json_each(?))");
    args.push(ciTokens);
  }
  if (f.since) {
    sql.push("created_at >= ?");
    args.push(f.since);
  }
  if (f.until) {
    sql.push("created_at < ?");
    args.push(f.until);
  }
  return { sql, args };
}

export interface BuildOptionSet {
  command?: number;
  tags: string[];
  outputs: { kind: string; attributes: Record<string, string> }[];
  push: boolean;
  load: boolean;
  save?: boolean;
  target?: string;
}

export interface StepInput {
  digest: string;
  name: string;
  cached: boolean;
  started: Date | null;
  completed: Date | null;
  error: string;
}
export interface LogInput {
  vertex: string;
  stream: number;
  at: Date | null;
  data: Uint8Array;
}

export type ConnectionAnswer =
  | { kind: "pending"; waitMs: number }
  | {
      kind: "active";
      endpoint: string;
      serverName: string;
      certPem: string;
      keyPem: string;
      caPem: string;
      serial: string;
    };

export interface BuildsDeps {
  db: Database;
  /** The projects a build runs on (by id or ORG/NAME, with their build timeout). */
  projects: Pick<ProjectsService, "find" | "findByRef">;
  /** Each build's own token, made with the build. */
  tokens: Pick<TokensService, "issueBuildToken">;
  pki: Pick<Pki, "issueBuildClientCertificate" | "trustedRootsPem">;
  builders: {
    request(ref: { projectId: string; platform: string }, holder: string): Promise<BuilderStatus>;
    release(holder: string): void;
    /** Refuses a build its organization could get no builder for (quota of running builders). */
    admissible?(orgId: string, projectId: string): void;
    ready(ref: {
      projectId: string;
      platform: string;
    }): { socketPath: string; runtime: "buildkitd" | "dockerd"; platform: string } | null;
    /** Resolves when request()'s answer may have changed, or `signal` aborts (a connection's hold). */
    whenChanged?(ref: { projectId: string; platform: string }, signal: AbortSignal): Promise<void>;
  };
  router: { buildEnded(buildId: string): void };
  audit: Pick<AuditService, "record">;
  log: Logger;
  publicUrl: string;
  buildEndpoint: { endpoint: string; serverName: string };
  /** No health report for this long → expired. */
  healthTimeoutMs: number;
  /** Logs kept per build. */
  logMaxBytes: number;
  /** A cancelled build whose client never finishes it is ended after this grace. */
  cancelGraceMs?: number;
  /** Refuses options whose exporters the builders lack (builders/exporters); none: all allowed. */
  exporters?: { refusal(options: readonly BuildOptionSet[]): string | null };
  now?: () => Date;
}

const CERT_MARGIN_MS = 10 * 60_000;
const PENDING_WAIT_MS = 1000;
/** A held connection whose hold ran out: the client asks again at once (the hold is the wait). */
const HELD_WAIT_MS = 20;
/** A new build's client reports health within this (the depot CLI at once, `slipway build` within 5 s). */
const FIRST_HEALTH_MS = 15_000;

export type BuildsService = ReturnType<typeof buildsServiceFactory>;

// Over 120 lines as a whole: a service factory, whose methods (each short) are the units; the
// closure only shares prepared statements and the drain state.
export function buildsServiceFactory(deps: BuildsDeps) {
  const { db, log } = deps;
  const now = deps.now ?? (() => new Date());
  const cancelGraceMs = deps.cancelGraceMs ?? 15_000;
  const byId = db.query("SELECT * FROM builds WHERE id = ?");
  const logs = buildLogsFactory({ db });
  /** Followers of builds (the API's live streams): every change below is published once committed. */
  const events = buildEventsFactory<BuildRow>();
  const stepOf = db.query(
    "SELECT digest, name, cached, started_at, completed_at, error FROM build_steps WHERE build_id = ? AND digest = ?",
  );
  /** Per active build: its log's unfinished line ends, so live lines are whole (see lineSplitter). */
  const splitters = new Map<string, ReturnType<typeof lineSplitter>>();
  const splitterOf = (id: string, before: number) => {
    let sp = splitters.get(id);
    if (!sp) {
      // First lines in this process: what came before sets where the log stands.
      sp = lineSplitter();
      for (const c of logs.chunksAfter(id, 0)) if (c.id < before) sp.push(c);
      splitters.set(id, sp);
    }
    return sp;
  };
  /** Reads the row only when someone follows (a read is a fair share of a Connect call's cost). */
  const publishBuild = (id: string) => {
    if (events.followerCount() === 0) return;
    const b = byId.get(id) as BuildRow | null;
    if (b) events.publish({ kind: "build", build: b });
  };
  /** Set when serve starts draining: CreateBuild is refused with it. */
  let admissionRefusal: string | null = null;
  /** Builds the appliance canceled on its way down → why, and whether their client has been told. */
  const shutdownCanceled = new Map<string, { reason: string; told: boolean }>();
  /** Connections held open while a builder starts, by build: its end, cancel or a drain lets them go. */
  const holds = new Map<string, Set<AbortController>>();
  const letGo = (id?: string) => {
    for (const [bid, hs] of holds) if (id === undefined || bid === id) for (const h of hs) h.abort();
  };

  /** Waits (at most `ms`) until the builder's state may have changed, the client leaves, or the build lets go. */
  async function holdFor(id: string, ref: { projectId: string; platform: string }, ms: number, signal?: AbortSignal) {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), ms);
    const leave = () => stop.abort();
    signal?.addEventListener("abort", leave, { once: true });
    let hs = holds.get(id);
    if (!hs) holds.set(id, (hs = new Set()));
    hs.add(stop);
    try {
      await deps.builders.whenChanged!(ref, stop.signal);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", leave);
      hs.delete(stop);
      if (hs.size === 0 && holds.get(id) === hs) holds.delete(id);
    }
  }

  const get = (id: string): BuildRow => {
    const b = byId.get(id) as BuildRow | null;
    if (!b) throw new NotFoundError("no such build");
    return b;
  };
  const resourceOf = (b: BuildRow): Resource => ({
    orgId: b.org_id,
    projectId: b.project_id,
    buildId: b.id,
    startedBy: b.started_by,
  });
  /** Looks a build up for `actor`: a build it may not see is exactly a missing one. */
  const visible = (actor: Actor, id: string, action: "build:read" | "build:drive" | "build:cancel"): BuildRow => {
    const b = byId.get(id) as BuildRow | null;
    if (!b) {
      if (actor.kind === "anonymous") authorize(actor, action);
      throw new NotFoundError("no such build");
    }
    authorize(actor, action, resourceOf(b));
    return b;
  };

  /** Ends an active build once: status, time, error; then the router and the builders. */
  function end(
    id: string,
    status: Exclude<BuildStatus, "created" | "running">,
    error: string | null,
    actor: string,
  ): BuildRow | null {
    const t = now().toISOString();
    // The status change and its audit record: one commit.
    const b = db.transaction(() => {
      const changed = db
        .query(
          `UPDATE builds SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status IN ('created', 'running')`,
        )
        .run(status, error?.slice(0, 64 * 1024) ?? null, t, id).changes;
      if (changed === 0) return null;
      const ended = get(id);
      deps.audit.record({
        orgId: ended.org_id,
        actor,
        action: `build.${status}`,
        target: id,
        details: { project_id: ended.project_id, ...(error ? { error: error.slice(0, 500) } : {}) },
      });
      return ended;
    })();
    if (!b) return null;
    letGo(id);
    const sp = splitters.get(id);
    splitters.delete(id);
    for (const line of sp?.flush() ?? []) events.publish({ kind: "log", build: b, line });
    events.publish({ kind: "build", build: b });
    deps.router.buildEnded(id);
    deps.builders.release(id);
    log.info("build ended", { build: id, project: b.project_id, status });
    return b;
  }

  /** `b` is the build's row as just read (nothing runs in between: bun:sqlite is synchronous). */
  function record(b: BuildRow, batch: { steps: StepInput[]; logs: LogInput[] }): void {
    const id = b.id;
    const upsert = db.query(
      `INSERT INTO build_steps (build_id, digest, name, cached, started_at, completed_at, error, seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT count(*) FROM build_steps WHERE build_id = ?))
       ON CONFLICT (build_id, digest) DO UPDATE SET
         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE name END,
         cached = max(cached, excluded.cached),
         started_at = coalesce(started_at, excluded.started_at),
         completed_at = coalesce(excluded.completed_at, completed_at),
         error = coalesce(excluded.error, error)`,
    );
    const changedSteps = new Set<string>();
    const newChunks: number[] = [];
    db.transaction(() => {
      for (const s of batch.steps) {
        if (!s.digest) continue;
        changedSteps.add(s.digest.slice(0, 200));
        upsert.run(
          id,
          s.digest.slice(0, 200),
          s.name.slice(0, 4096),
          s.cached ? 1 : 0,
          s.started?.toISOString() ?? null,
          s.completed?.toISOString() ?? null,
          s.error ? s.error.slice(0, 16384) : null,
          id,
        );
      }
      if (batch.logs.length === 0) return;
      let used = b.log_bytes;
      let truncated = b.log_truncated === 1;
      for (const l of batch.logs) {
        if (truncated) break;
        const room = deps.logMaxBytes - used;
        const data = l.data.length > room ? l.data.subarray(0, Math.max(0, room)) : l.data;
        if (data.length > 0)
          newChunks.push(
            logs.append(id, { vertex: l.vertex.slice(0, 200), stream: l.stream, at: l.at ?? now(), data }),
          );
        used += data.length;
        if (l.data.length > room) truncated = true;
      }
      db.query("UPDATE builds SET log_bytes = ?, log_truncated = ? WHERE id = ?").run(used, truncated ? 1 : 0, id);
    })();
    for (const digest of changedSteps) {
      const step = stepOf.get(id, digest) as StepRow | null;
      if (step) events.publish({ kind: "step", build: b, step });
    }
    if (newChunks.length > 0) {
      const sp = splitterOf(id, newChunks[0]!);
      for (const chunk of logs.chunksAfter(id, newChunks[0]! - 1))
        for (const line of sp.push(chunk)) events.publish({ kind: "log", build: b, line });
    }
  }

  /** A page cursor as list() made it (created_at|id); anything else is the caller's mistake. */
  function pageCursor(cursor: string): [string, string] {
    const [at, lastId, ...rest] = cursor.split("|");
    if (
      rest.length > 0 ||
      !at ||
      !lastId ||
      !/^bld_[a-z2-7]+$/.test(lastId) ||
      Number.isNaN(Date.parse(at)) ||
      new Date(Date.parse(at)).toISOString() !== at
    ) {
      throw new InvalidInputError(
        "the page cursor is not one this server gave: pass the previous page's next_cursor (next_page_token over RPC), or none",
        [{ pointer: "/cursor", detail: "a cursor from a previous page" }],
      );
    }
    return [at, lastId];
  }

  function platformOf(input: string): string {
    const p = normalizePlatform(input);
    if (!p)
      throw new InvalidInputError(`unknown platform ${JSON.stringify(input)}`, [
        { pointer: "/platform", detail: "expected linux/amd64 or linux/arm64" },
      ]);
    return p;
  }

  return {
    get,

    /** By id, or null (no authorization: for the appliance's own services). */
    find(id: string): BuildRow | null {
      return byId.get(id) as BuildRow | null;
    },

    /** CreateBuild: a build on a project named by id or as ORG/NAME, and its build token (shown once). */
    create(actor: Actor, projectRef: string, options: BuildOptionSet[]): { build: BuildRow; token: string } {
      const p = deps.projects.findByRef(projectRef);
      if (!p) {
        if (actor.kind === "anonymous") authorize(actor, "build:run"); // 401 before anything is revealed
        throw new NotFoundError("no such project"); // as for another tenant's project
      }
      authorize(actor, "build:run", { orgId: p.org_id, projectId: p.id });
      if (admissionRefusal) throw new UnavailableError(admissionRefusal);
      const refusal = deps.exporters?.refusal(options);
      if (refusal) throw new PreconditionError(refusal);
      deps.builders.admissible?.(p.org_id, p.id);
      const id = newId("bld");
      const t = now();
      const deadline = new Date(t.getTime() + p.build_timeout_seconds * 1000);
      let token = "";
      db.transaction(() => {
        db.query(
          `INSERT INTO builds (id, project_id, org_id, status, started_by, options, created_at, deadline_at) VALUES (?, ?, ?, 'created', ?, ?, ?, ?)`,
        ).run(id, p.id, p.org_id, actorLabel(actor), JSON.stringify(options), t.toISOString(), deadline.toISOString());
        token = deps.tokens.issueBuildToken({ id, projectId: p.id }, new Date(deadline.getTime() + CERT_MARGIN_MS));
        deps.audit.record({
          orgId: p.org_id,
          actor,
          action: "build.create",
          target: id,
          details: { project_id: p.id },
        });
      })();
      const build = get(id);
      events.publish({ kind: "build", build });
      return { build, token };
    },

    /**
     * GetBuildKitConnection: a fresh certificate once the builder is ready. While it starts, the
     * call is held up to `hold.ms` (woken by the builder service, no polling) and answered the
     * moment the builder is ready or failed; the build ending or being canceled, a drain or the
     * client leaving (`hold.signal`) end the hold at once. Unheld or run out: pending, as the
     * depot CLI expects (it sleeps wait_ms and asks again).
     */
    async connection(
      actor: Actor,
      id: string,
      platformInput: string,
      hold: { ms?: number; signal?: AbortSignal } = {},
    ): Promise<ConnectionAnswer> {
      const b = visible(actor, id, "build:drive");
      const platform = platformOf(platformInput);
      const ref = { projectId: b.project_id, platform };
      // Wall time, not `now`: the hold is a real wait whatever clock the build's records use.
      const until = Date.now() + Math.max(0, hold.ms ?? 0);
      let status: BuilderStatus;
      for (let current = b; ; current = get(id)) {
        if (!ACTIVE.has(current.status))
          throw new PreconditionError(`build ${id} is ${current.status}; it can no longer connect`);
        if (current.cancel_requested_at) throw new PreconditionError(`build ${id} was canceled`);
        status = await deps.builders.request(ref, id);
        // The build may have ended while its builder was asked for: the request held the builder
        // for it after its end released everything, so release again or the builder never idles.
        if (!ACTIVE.has(get(id).status)) {
          deps.builders.release(id);
          throw new PreconditionError(`build ${id} ended`);
        }
        if (status.state !== "starting") break;
        const left = until - Date.now();
        // A drain answers at once (and, like an unheld call, with the long wait: no tight loop).
        if (admissionRefusal || !deps.builders.whenChanged || hold.ms === undefined || hold.ms <= 0)
          return { kind: "pending", waitMs: PENDING_WAIT_MS };
        if (left <= 0 || hold.signal?.aborted) return { kind: "pending", waitMs: HELD_WAIT_MS };
        await holdFor(id, ref, left, hold.signal);
        if (hold.signal?.aborted) return { kind: "pending", waitMs: HELD_WAIT_MS }; // nobody listens now
      }
      if (status.state === "failed")
        throw new PreconditionError(`the builder for ${platform} could not start: ${status.error}`);
      const t = now();
      const lifetimeMs = Math.max(60_000, Date.parse(b.deadline_at) - t.getTime() + CERT_MARGIN_MS);
      // The certificate, its audit record and the build's record of it are one commit.
      const cert = await deps.pki.issueBuildClientCertificate({
        orgId: b.org_id,
        projectId: b.project_id,
        buildId: id,
        platform,
        lifetimeMs,
        requester: actorLabel(actor),
        onIssued: ({ serial, notAfter }) => {
          db.query(
            "INSERT INTO build_certificates (serial, build_id, platform, not_after, created_at) VALUES (?, ?, ?, ?, ?)",
          ).run(serial, id, platform, notAfter.toISOString(), t.toISOString());
          const platforms = new Set(JSON.parse(get(id).platforms) as string[]);
          platforms.add(platform);
          db.query(
            "UPDATE builds SET status = 'running', started_at = coalesce(started_at, ?), platforms = ?, last_health_at = coalesce(last_health_at, ?) WHERE id = ? AND status IN ('created', 'running')",
          ).run(t.toISOString(), JSON.stringify([...platforms]), t.toISOString(), id);
        },
      });
      publishBuild(id); // running, with this platform
      return {
        kind: "active",
        endpoint: deps.buildEndpoint.endpoint,
        serverName: deps.buildEndpoint.serverName,
        certPem: cert.certPem,
        keyPem: cert.keyPem!,
        caPem: deps.pki.trustedRootsPem(),
        serial: cert.serial,
      };
    },

    /** ReportBuildHealth: the build is alive; answers when it will be cancelled, if it will. */
    health(actor: Actor, id: string): { cancelsAt: Date | null } {
      const b = visible(actor, id, "build:drive");
      const t = now();
      if (!ACTIVE.has(b.status)) return { cancelsAt: b.finished_at ? new Date(b.finished_at) : t };
      db.query("UPDATE builds SET last_health_at = ? WHERE id = ?").run(t.toISOString(), id);
      if (b.cancel_requested_at) return { cancelsAt: new Date(b.cancel_requested_at) };
      const deadline = Date.parse(b.deadline_at);
      return { cancelsAt: deadline - t.getTime() <= 30_000 ? new Date(deadline) : null };
    },

    /** FinishBuild from the client. Finishing an ended build again is a no-op (idempotent retries). */
    finish(
      actor: Actor,
      id: string,
      result: { kind: "success" } | { kind: "error"; error: string } | { kind: "canceled" },
    ): BuildRow {
      const b = visible(actor, id, "build:drive");
      if (!ACTIVE.has(b.status)) {
        // Canceled by a stopping appliance: this answer is where the depot CLI shows the user why.
        const shutdown = shutdownCanceled.get(id);
        if (shutdown) {
          shutdown.told = true;
          throw new UnavailableError(shutdown.reason);
        }
        return b;
      }
      const status = result.kind === "success" ? "finished" : result.kind === "error" ? "failed" : "canceled";
      return (
        end(
          id,
          b.cancel_requested_at && status !== "finished" ? "canceled" : status,
          result.kind === "error" ? result.error : null,
          actorLabel(actor),
        ) ?? get(id)
      );
    },

    /** Cancellation by an owner or the build's starter: the client learns it from its next health check. */
    cancel(actor: Actor, id: string): BuildRow {
      const b = visible(actor, id, "build:cancel");
      if (!ACTIVE.has(b.status)) throw new ConflictError(`build ${id} already ${b.status}`);
      const t = now().toISOString();
      db.query(
        "UPDATE builds SET cancel_requested_at = coalesce(cancel_requested_at, ?), cancel_requested_by = coalesce(cancel_requested_by, ?) WHERE id = ?",
      ).run(t, actorLabel(actor), id);
      deps.audit.record({
        orgId: b.org_id,
        actor,
        action: "build.cancel",
        target: id,
        details: { project_id: b.project_id },
      });
      letGo(id); // a held connection answers now: the build was canceled
      publishBuild(id);
      return get(id);
    },

    /** Status batches from the client: steps upserted by digest, logs appended up to the cap. */
    /** Refused once the build ended: its record is final, and its token must not keep writing
     * to it until the token expires (what BuildKit told the client is observed by the build
     * endpoint anyway). */
    report(actor: Actor, id: string, batch: { steps: StepInput[]; logs: LogInput[] }): void {
      const b = visible(actor, id, "build:drive");
      if (!ACTIVE.has(b.status))
        throw new PreconditionError(`build ${id} is ${b.status}: it takes no more steps or logs`);
      record(b, batch);
    },

    /** What the build endpoint saw BuildKit tell the client (Control/Status) for this build. */
    observed(id: string, batch: { steps: StepInput[]; logs: LogInput[] }): void {
      const b = byId.get(id) as BuildRow | null;
      if (b) record(b, batch);
    },

    read(actor: Actor, id: string): BuildRow {
      return visible(actor, id, "build:read");
    },

    steps(actor: Actor, id: string) {
      visible(actor, id, "build:read");
      return db
        .query(
          "SELECT digest, name, cached, started_at, completed_at, error FROM build_steps WHERE build_id = ? ORDER BY seq",
        )
        .all(id) as {
        digest: string;
        name: string;
        cached: number;
        started_at: string | null;
        completed_at: string | null;
        error: string | null;
      }[];
    },

    logs(actor: Actor, id: string): { text: string; truncated: boolean } {
      const b = visible(actor, id, "build:read");
      return { text: logs.text(id), truncated: b.log_truncated === 1 };
    },

    /** Builds of a project, newest first; `cursor` is the last seen build's created_at|id. */
    list(
      actor: Actor,
      projectId: string,
      pageSize: number,
      cursor: string | null,
      filter: BuildFilter = {},
    ): { builds: BuildListRow[]; next: string | null } {
      const p = deps.projects.find(projectId);
      if (!p) {
        if (actor.kind === "anonymous") authorize(actor, "build:read"); // 401 before anything is revealed
        throw new NotFoundError("no such project"); // as for another tenant's project
      }
      authorize(actor, "project:read", { orgId: p.org_id, projectId });
      return this.listOf([projectId], pageSize, cursor, filter);
    },

    /**
     * Builds of these projects (already authorized by the caller), newest first, narrowed by
     * `filter`; each with its step counts. `cursor` is the last seen build's created_at|id.
     */
    listOf(
      projectIds: readonly string[],
      pageSize: number,
      cursor: string | null,
      filter: BuildFilter = {},
    ): { builds: BuildListRow[]; next: string | null } {
      const size = Math.min(Math.max(1, Math.trunc(pageSize) || 50), 200);
      const where = filterSql(projectIds, filter);
      if (cursor) {
        const [at, lastId] = pageCursor(cursor);
        where.sql.push("(created_at, id) < (?, ?)");
        where.args.push(at, lastId);
      }
      const rows = db
        .query(
          `SELECT b.*,
             (SELECT count(*) FROM build_steps s WHERE s.build_id = b.id) AS step_count,
             (SELECT count(*) FROM build_steps s WHERE s.build_id = b.id AND s.cached = 1) AS cached_step_count
           FROM builds b WHERE ${where.sql.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`,
        )
        .all(...where.args, size + 1) as BuildListRow[];
      const more = rows.length > size;
      const page = rows.slice(0, size);
      return { builds: page, next: more ? `${page.at(-1)!.created_at}|${page.at(-1)!.id}` : null };
    },

    /** One build's step counts (for a single build's view). */
    stepCounts(id: string): { step_count: number; cached_step_count: number } {
      return db
        .query(
          "SELECT count(*) AS step_count, coalesce(sum(cached), 0) AS cached_step_count FROM build_steps WHERE build_id = ?",
        )
        .get(id) as { step_count: number; cached_step_count: number };
    },

    /**
     * The charts' figures for these projects (already authorized), computed by SQLite: the last
     * `last` builds that ended (duration, cache-hit ratio) and, per UTC day of the last `days`,
     * how many builds finished and how many failed.
     */
    stats(
      projectIds: readonly string[],
      days: number,
      last: number,
    ): {
      recent: {
        id: string;
        created_at: string;
        status: BuildStatus;
        duration_seconds: number | null;
        step_count: number;
        cached_step_count: number;
      }[];
      per_day: { day: string; finished: number; failed: number }[];
    } {
      const ids = JSON.stringify(projectIds);
      const recent = db
        .query(
          `SELECT b.id, b.created_at, b.status,
             round((julianday(b.finished_at) - julianday(coalesce(b.started_at, b.created_at))) * 86400, 1) AS duration_seconds,
             (SELECT count(*) FROM build_steps s WHERE s.build_id = b.id) AS step_count,
             (SELECT count(*) FROM build_steps s WHERE s.build_id = b.id AND s.cached = 1) AS cached_step_count
           FROM builds b
           WHERE b.project_id IN (SELECT value FROM json_each(?)) AND b.finished_at IS NOT NULL
           ORDER BY b.created_at DESC, b.id DESC LIMIT ?`,
        )
        .all(ids, last) as ReturnType<BuildsService["stats"]>["recent"];
      const since = new Date(now().getTime() - (days - 1) * 86_400_000).toISOString().slice(0, 10);
      const counted = db
        .query(
          `SELECT substr(created_at, 1, 10) AS day,
             sum(status = 'finished') AS finished, sum(status IN ('failed', 'expired')) AS failed
           FROM builds WHERE project_id IN (SELECT value FROM json_each(?)) AND created_at >= ?
           GROUP BY day`,
        )
        .all(ids, since) as { day: string; finished: number; failed: number }[];
      const byDay = new Map(counted.map((c) => [c.day, c]));
      // Every day of the window, including the quiet ones (a chart's gaps are days too).
      const per_day = Array.from({ length: days }, (_, i) => {
        const day = new Date(Date.parse(since) + i * 86_400_000).toISOString().slice(0, 10);
        const c = byDay.get(day);
        return { day, finished: c?.finished ?? 0, failed: c?.failed ?? 0 };
      });
      return { recent: recent.reverse(), per_day };
    },

    /** Follows a build, project or organization (the caller authorized it first): see builds/events. */
    subscribe(topic: Topic, listener: Parameters<typeof events.subscribe>[1]): () => void {
      return events.subscribe(topic, listener);
    },

    /** How many follow builds now (a stream that ended must leave none behind). */
    followerCount: () => events.followerCount(),

    /** A build's stored log as lines after `lastLineId` (a follower's `Last-Event-ID`; none: all). */
    logLines(actor: Actor, id: string, lastLineId: string | null): LogLine[] {
      const b = visible(actor, id, "build:read");
      // From the start: a line may begin in a chunk before the one the follower stopped in.
      const sp = lineSplitter();
      const all: LogLine[] = [];
      for (const c of logs.chunksAfter(id, 0)) all.push(...sp.push(c));
      if (!ACTIVE.has(b.status)) all.push(...sp.flush());
      return lastLineId ? all.filter((l) => compareLineIds(l.id, lastLineId) > 0) : all;
    },

    buildUrl(id: string): string {
      return `${deps.publicUrl.replace(/\/$/, "")}/builds/${id}`;
    },

    /**
     * The build endpoint's lookup: a certificate serial → its active build's ready builder, or
     * null (unknown serial, build ended or cancelled, builder not ready).
     */
    route(serial: string): RouteTarget | null {
      const r = db
        .query(
          `SELECT c.build_id, c.platform, b.project_id, b.status, b.cancel_requested_at FROM build_certificates c JOIN builds b ON b.id = c.build_id WHERE c.serial = ?`,
        )
        .get(serial) as {
        build_id: string;
        platform: string;
        project_id: string;
        status: BuildStatus;
        cancel_requested_at: string | null;
      } | null;
      // A cancelled build gets no new connection: its client is stopping (what it has stays until the end).
      if (!r || !ACTIVE.has(r.status) || r.cancel_requested_at) return null;
      const ready = deps.builders.ready({ projectId: r.project_id, platform: r.platform });
      if (!ready) return null;
      return {
        buildId: r.build_id,
        projectId: r.project_id,
        platform: r.platform,
        socketPath: ready.socketPath,
        runtime: ready.runtime,
      };
    },

    /**
     * Ends what must end: no health for too long → expired; cancelled and not finished by the
     * client within the grace → canceled; past the hard deadline → expired. Returns the ids.
     */
    sweep(): string[] {
      const t = now().getTime();
      const ended: string[] = [];
      for (const b of db.query("SELECT * FROM builds WHERE status IN ('created', 'running')").all() as BuildRow[]) {
        const lastSign = Date.parse(b.last_health_at ?? b.created_at);
        if (b.cancel_requested_at && t - Date.parse(b.cancel_requested_at) > cancelGraceMs) {
          if (end(b.id, "canceled", null, "appliance")) ended.push(b.id);
        } else if (t - lastSign > deps.healthTimeoutMs) {
          if (end(b.id, "expired", `no health report for ${Math.round((t - lastSign) / 1000)} s`, "appliance"))
            ended.push(b.id);
        } else if (t > Date.parse(b.deadline_at) + cancelGraceMs) {
          if (end(b.id, "expired", "the project's build timeout was reached", "appliance")) ended.push(b.id);
        }
      }
      return ended;
    },

    /** Draining: from now on CreateBuild is refused (`unavailable`) with `message`. */
    stopAdmitting(message: string): void {
      admissionRefusal = message;
      letGo(); // held connections answer now: a stopping serve waits for no hold
    },

    /** Connections held open now (a hold that ended must leave none behind). */
    heldCount(): number {
      let n = 0;
      for (const hs of holds.values()) n += hs.size;
      return n;
    },

    /**
     * Active builds whose client is alive: heard from (health) within `withinMs`, or never yet but
     * created in the last 15 s (clients report health as soon as they have a build). A drain waits
     * for these; a build created and then abandoned does not hold a stopping server.
     */
    inFlight(withinMs: number): string[] {
      const t = now().getTime();
      const heard = new Date(t - withinMs).toISOString();
      const fresh = new Date(t - FIRST_HEALTH_MS).toISOString();
      return (
        db
          .query(
            "SELECT id FROM builds WHERE status IN ('created', 'running') AND (last_health_at >= ? OR (last_health_at IS NULL AND created_at >= ?))",
          )
          .all(heard, fresh) as { id: string }[]
      ).map((r) => r.id);
    },

    /** The end of a drain: every active build ends as canceled with `reason`, which FinishBuild then answers. */
    cancelForShutdown(reason: string): string[] {
      const ended: string[] = [];
      for (const { id } of db.query("SELECT id FROM builds WHERE status IN ('created', 'running')").all() as {
        id: string;
      }[]) {
        shutdownCanceled.set(id, { reason, told: false });
        if (end(id, "canceled", reason, "appliance")) ended.push(id);
        else shutdownCanceled.delete(id);
      }
      return ended;
    },

    /** Builds canceled by `cancelForShutdown` whose client has not called FinishBuild since. */
    untoldShutdownCancels(): string[] {
      return [...shutdownCanceled].filter(([, v]) => !v.told).map(([id]) => id);
    },

    /** Builds whose builder died under them fail (and their connections close). */
    builderLost(buildIds: string[], reason: string): void {
      for (const id of buildIds) end(id, "failed", `builder lost: ${reason}`, "appliance");
    },

    /** Builds still marked active whose builders vanished while serve was down. */
    failOrphans(lost: { projectId: string; platform: string }[]): string[] {
      const ended: string[] = [];
      for (const l of lost) {
        const rows = db
          .query(
            "SELECT DISTINCT c.build_id FROM build_certificates c JOIN builds b ON b.id = c.build_id WHERE b.project_id = ? AND c.platform = ? AND b.status IN ('created', 'running')",
          )
          .all(l.projectId, l.platform) as { build_id: string }[];
        for (const r of rows)
          if (end(r.build_id, "failed", "its builder vanished while the appliance was down", "appliance"))
            ended.push(r.build_id);
      }
      return ended;
    },

    /**
     * The last `perProject` builds (id, status, creation) of each of these projects, newest
     * first: a projects list's health strip in one request. Each project is authorized like a
     * build list (project:read); one indexed query per project (builds_project), not a scan of
     * the organization's builds.
     */
    recentOf(
      actor: Actor,
      projects: readonly { id: string; org_id: string }[],
      perProject: number,
    ): Map<string, { id: string; status: BuildStatus; created_at: string }[]> {
      const latest = db.query(
        "SELECT id, status, created_at FROM builds WHERE project_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
      );
      const n = Math.min(Math.max(1, Math.trunc(perProject) || 10), 50);
      const out = new Map<string, { id: string; status: BuildStatus; created_at: string }[]>();
      for (const p of projects) {
        authorize(actor, "project:read", { orgId: p.org_id, projectId: p.id });
        out.set(p.id, latest.all(p.id, n) as { id: string; status: BuildStatus; created_at: string }[]);
      }
      return out;
    },
  };
}
