/**
 * @module api/routes/builds
 * Builds over REST: read one (status, steps, logs), list a project's or an organization's
 * (filtered, paged, with who started each in words), their charts' figures, cancel; and a
 * project's builders and cache (usage per platform, encryption, reset). Live: Server-Sent Events per build
 * (its row, steps and log lines, then `end`) and per project or organization (their builds'
 * rows), authorized exactly like the matching reads before any stream starts.
 */
import { Elysia, t } from "elysia";
import { actorLabel } from "../../auth/actor.ts";
import { authorize, type Actor } from "../../auth/index.ts";
import { can } from "../../auth/policy.ts";
import type {
  BuildFilter,
  BuildListRow,
  BuildOptionSet,
  BuildRow,
  BuildsService,
  BuildStatus,
  LogLine,
  StepRow,
} from "../../builds/index.ts";
import { InvalidInputError } from "../../errors.ts";
import {
  Build,
  BuildPage,
  BuildParams as BuildId,
  BuildEventsQuery,
  BuildStats,
  BuildStatsQuery,
  OrgBuildsQuery,
  OrgParams,
  ProjectBuildsQuery,
  Step,
} from "../../builds/models.ts";
import { describeStarters, type Starter } from "../../builds/started-by.ts";
import { Builder, CacheReset, ProjectCache } from "../../builders/models.ts";
import { ProjectParams as ProjectId } from "../../projects/models.ts";
import { actorMacro } from "../actor.ts";
import { type SseSink, sseResponse, streamLimiter } from "../sse.ts";
import type { IdentityContext } from "../identity.ts";

export interface BuildRoutesDeps {
  ctx: IdentityContext;
  builds: BuildsService;
  builders: {
    list(projectId: string): {
      platform: string;
      state: string;
      runtime: string;
      security_profile: string | null;
      emulated: number;
      image: string | null;
      image_id: string | null;
      started_at: string | null;
      updated_at: string;
      last_used_at: string | null;
      last_error: string | null;
    }[];
    outdated(
      projectId: string,
    ): { platform: string; to: { image: string; imageId: string }; settingsChanged: boolean }[];
    cacheUsage(
      projectId: string,
    ): Promise<
      { platform: string; usage: { usedBytes: number; sizeBytes: number | null } | null; encryption: string }[]
    >;
  };
  encryption: string;
  resetCache(projectId: string, actor: Actor): Promise<{ platforms: string[] }>;
  /** Live streams open at once per credential (default 20); more answer 429. */
  maxStreamsPerCredential?: number;
  /** A comment this often keeps an idle stream open through proxies (default 15 s). */
  heartbeatMs?: number;
}

const ENDED: ReadonlySet<string> = new Set(["finished", "failed", "canceled", "expired"]);
/** One count per credential: a token, or a person's web sessions together. */
const credentialOf = (a: Actor) => `${actorLabel(a)}|${"tokenId" in a ? (a.tokenId ?? "session") : ""}`;
const stepView = (s: StepRow) => ({ ...s, cached: s.cached === 1 });

/**
 * A build stream's log lines: one `log` event each, or with a batch over 1, `logs` events of up
 * to that many (the stored log, and lines published in the same turn), each with its last line's
 * id, which is what a reconnecting EventSource sends back. A browser's EventSource took
 * 60–100 µs per event here: a 10,000-line log as single events was a second of its main thread.
 */
function logLineSender(sink: SseSink, batch: number) {
  const held: LogLine[] = [];
  const flush = () => {
    if (held.length === 0) return;
    const last = held.at(-1)!.id;
    sink.send(
      "logs",
      held.map(({ id: _, ...line }) => line),
      last,
    );
    held.length = 0;
  };
  return {
    add(l: LogLine) {
      if (batch === 1) {
        const { id, ...line } = l;
        return sink.send("log", line, id);
      }
      held.push(l);
      if (held.length >= batch) flush();
      else if (held.length === 1) queueMicrotask(flush); // what else is published this turn joins it
    },
    flush,
  };
}

const streamDetail = (summary: string) => ({
  tags: ["builds"],
  summary,
  security: bearer,
  responses: {
    200: {
      description: "text/event-stream",
      content: { "text/event-stream": { schema: { type: "string" as const } } },
    },
  },
});

const bearer = [{ bearer: [] }];

/** A filter's instant as stored (UTC, milliseconds), or 400. */
function instant(value: string, pointer: string): string {
  const ms = Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(ms))
    throw new InvalidInputError(`${pointer.slice(1)} is not a date`, [{ pointer, detail: "an RFC 3339 date-time" }]);
  return new Date(ms).toISOString();
}

/** What a build produces, from its recorded options (one entry per kind, in words). */
function outputsOf(options: string): string[] {
  let sets: BuildOptionSet[] = [];
  try {
    sets = JSON.parse(options) as BuildOptionSet[];
  } catch {}
  const out = new Set<string>();
  for (const o of Array.isArray(sets) ? sets : []) {
    if (o.push) out.add("pushed");
    if (o.save) out.add("saved");
    if (o.load) out.add("loaded");
    for (const e of o.outputs ?? []) {
      if (e.kind === "image" && e.attributes?.push === "true") out.add("pushed");
      else if (e.kind === "docker" || e.kind === "moby") out.add("loaded");
      else if (e.kind !== "image") out.add(`exported: ${e.kind}`);
    }
  }
  return [...out];
}

export function buildRoutes(deps: BuildRoutesDeps) {
  const { ctx, builds } = deps;
  /** What a person reads about a build (names resolved through their owners), for a page of them. */
  const views = (rows: (BuildRow & Partial<Pick<BuildListRow, "step_count" | "cached_step_count">>)[]) => {
    const starters = describeStarters(
      rows.map((b) => b.started_by),
      { usernamesOf: ctx.orgs.usernamesOf, namesOf: ctx.tokens.namesOf },
    );
    const projectNames = new Map(
      ctx.projects.listIds([...new Set(rows.map((b) => b.project_id))]).map((p) => [p.id, p.name]),
    );
    const at = Date.now();
    return rows.map((b) => {
      const counts = b.step_count === undefined ? builds.stepCounts(b.id) : (b as BuildListRow);
      const starter: Starter = starters.get(b.started_by) ?? { kind: "appliance", name: b.started_by };
      const begun = Date.parse(b.started_at ?? b.created_at);
      const ended = b.finished_at ? Date.parse(b.finished_at) : b.status === "running" ? at : null;
      return {
        ...view(b),
        started_by_kind: starter.kind,
        started_by_name: starter.name,
        project_name: projectNames.get(b.project_id) ?? b.project_id,
        duration_seconds: ended === null ? null : Math.max(0, Math.round((ended - begun) / 100) / 10),
        step_count: counts.step_count,
        cached_step_count: counts.cached_step_count,
        outputs: outputsOf(b.options),
      };
    });
  };
  const full = (b: BuildRow) => views([b])[0]!;
  const view = (b: BuildRow) => ({
    id: b.id,
    project_id: b.project_id,
    org_id: b.org_id,
    status: b.status,
    started_by: b.started_by,
    options: JSON.parse(b.options) as unknown[],
    platforms: JSON.parse(b.platforms) as string[],
    error: b.error,
    created_at: b.created_at,
    started_at: b.started_at,
    finished_at: b.finished_at,
    deadline_at: b.deadline_at,
    cancel_requested_at: b.cancel_requested_at,
    log_bytes: b.log_bytes,
    log_truncated: b.log_truncated === 1,
    build_url: builds.buildUrl(b.id),
  });
  /** The organization's projects `actor` may see; none visible and not a member: 404, as for a missing one. */
  const visibleProjects = (actor: Actor, ref: string): string[] => {
    if (actor.kind === "anonymous") authorize(actor, "org:read");
    const org = ctx.orgs.get(ref);
    const ids = ctx.projects
      .list(org.id)
      .filter((p) => can(actor, "project:read", { orgId: org.id, projectId: p.id }))
      .map((p) => p.id);
    if (ids.length === 0) authorize(actor, "org:read", { orgId: org.id });
    return ids;
  };
  const filterOf = (q: { status?: string; started_by?: "user" | "token" | "ci"; since?: string; until?: string }) => {
    const f: BuildFilter = {};
    if (q.status) f.status = q.status.split(",") as BuildStatus[];
    if (q.started_by) {
      f.startedBy = q.started_by;
      if (q.started_by !== "user") f.ciTokenIds = ctx.tokens.exchangedIds();
    }
    if (q.since) f.since = instant(q.since, "/since");
    if (q.until) f.until = instant(q.until, "/until");
    if (f.since && f.until && f.since >= f.until)
      throw new InvalidInputError("since must be before until", [{ pointer: "/until", detail: "after since" }]);
    return f;
  };
  const statsOf = (ids: string[], q: { days?: number; last?: number }) => {
    const s = builds.stats(ids, q.days ?? 30, q.last ?? 50);
    return {
      recent: s.recent.map((r) => ({
        ...r,
        cache_hit_ratio: r.step_count > 0 ? r.cached_step_count / r.step_count : null,
      })),
      per_day: s.per_day,
    };
  };
  const streams = streamLimiter(deps.maxStreamsPerCredential ?? 20);
  /** The stream's credential, authenticated again: revoked, expired or signed out ends the stream. */
  const stillAuthorized = async (request: Request) => (await ctx.actorOf(request)).kind !== "anonymous";
  /** A stream of build rows for a project's or organization's followers, after the caller was authorized. */
  const buildsStream = (actor: Actor, request: Request, topic: { project: string } | { org: string }) => {
    const release = streams.acquire(credentialOf(actor));
    return sseResponse(request, {
      heartbeatMs: deps.heartbeatMs,
      stillAuthorized: () => stillAuthorized(request),
      onClose: release,
      // Per event, the same rule as the lists: a project token following its organization sees its own project's builds.
      start: (sink) =>
        builds.subscribe(
          topic,
          (e) =>
            e.kind === "build" &&
            can(actor, "project:read", { orgId: e.build.org_id, projectId: e.build.project_id }) &&
            sink.send("build", view(e.build)),
        ),
    });
  };
  const projectFor = (actor: Actor, id: string, action: "project:read" | "cache:reset") => {
    const p = ctx.projects.get(id);
    authorize(actor, action, { orgId: p.org_id, projectId: p.id });
    return p;
  };

  return new Elysia({ name: "routes/builds", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .get("/builds/:id", ({ actor, params }) => full(builds.read(actor, params.id)), {
      actor: true,
      params: BuildId,
      response: { 200: Build },
      detail: { tags: ["builds"], summary: "A build: status, options, platforms, timings", security: bearer },
    })
    .get(
      "/builds/:id/steps",
      ({ actor, params }) => builds.steps(actor, params.id).map((s) => ({ ...s, cached: s.cached === 1 })),
      {
        actor: true,
        params: BuildId,
        response: { 200: t.Array(Step) },
        detail: { tags: ["builds"], summary: "A build's steps (BuildKit vertexes) in order", security: bearer },
      },
    )
    .get(
      "/builds/:id/logs",
      ({ actor, params, set }) => {
        const { text, truncated } = builds.logs(actor, params.id);
        set.headers["content-type"] = "text/plain; charset=utf-8";
        set.headers["x-slipway-log-truncated"] = String(truncated);
        return text;
      },
      {
        actor: true,
        params: BuildId,
        detail: {
          tags: ["builds"],
          summary: "A build's log, as text (capped per build; X-Slipway-Log-Truncated says whether it was cut)",
          security: bearer,
        },
      },
    )
    .get(
      "/builds/:id/events",
      ({ actor, params, query, request }) => {
        const first = builds.read(actor, params.id); // 404 (foreign or missing) before any stream
        const release = streams.acquire(credentialOf(actor));
        const lastId = request.headers.get("last-event-id");
        return sseResponse(request, {
          heartbeatMs: deps.heartbeatMs,
          stillAuthorized: () => stillAuthorized(request),
          onClose: release,
          start: (sink) => {
            const lines = logLineSender(sink, query.log_batch ?? 1);
            // Log lines held for a batch go out before any other event, so the order is kept.
            const send = (event: string, data: unknown) => {
              lines.flush();
              sink.send(event, data);
            };
            const ended = (b: BuildRow) => {
              if (!ENDED.has(b.status)) return false;
              send("end", view(b));
              sink.close();
              return true;
            };
            // Subscribed and replayed in one synchronous turn: nothing is published in between.
            const unsubscribe = builds.subscribe({ build: first.id }, (e) => {
              if (e.kind === "build") {
                send("build", view(e.build));
                ended(e.build);
              } else if (e.kind === "step") send("step", stepView(e.step));
              else lines.add(e.line);
            });
            send("build", view(first));
            for (const s of builds.steps(actor, first.id)) send("step", stepView(s));
            for (const line of builds.logLines(actor, first.id, lastId)) lines.add(line);
            lines.flush();
            ended(first);
            return unsubscribe;
          },
        });
      },
      {
        actor: true,
        params: BuildId,
        query: BuildEventsQuery,
        detail: streamDetail(
          "Follow a build (Server-Sent Events): `build` (the Build) on connect and on change, `step` (a Step), `log` ({vertex, stream, at, text} per line; Last-Event-ID resumes), `logs` (an array of those, with `log_batch`), `end` when it ended",
        ),
      },
    )
    .post(
      "/builds/:id/cancel",
      ({ actor, params, set }) => {
        set.status = 202;
        return full(builds.cancel(actor, params.id));
      },
      {
        actor: true,
        params: BuildId,
        response: { 202: Build },
        detail: {
          tags: ["builds"],
          summary: "Cancel a build (owners and whoever started it): its client learns it at its next health report",
          security: bearer,
        },
      },
    )
    .get(
      "/projects/:id/builds",
      ({ actor, params, query }) => {
        const page = builds.list(actor, params.id, query.limit ?? 50, query.cursor ?? null, filterOf(query));
        return { builds: views(page.builds), next_cursor: page.next };
      },
      {
        actor: true,
        params: ProjectId,
        query: ProjectBuildsQuery,
        response: { 200: BuildPage },
        detail: {
          tags: ["builds"],
          summary: "A project's builds, newest first; narrowed by status, who started them and when",
          security: bearer,
        },
      },
    )
    .get(
      "/orgs/:org/builds",
      ({ actor, params, query }) => {
        const ids = visibleProjects(actor, params.org);
        const page = builds.listOf(ids, query.limit ?? 50, query.cursor ?? null, {
          ...filterOf(query),
          ...(query.project ? { projectIds: query.project.split(",") } : {}),
        });
        return { builds: views(page.builds), next_cursor: page.next };
      },
      {
        actor: true,
        params: OrgParams,
        query: OrgBuildsQuery,
        response: { 200: BuildPage },
        detail: {
          tags: ["builds"],
          summary:
            "An organization's builds (every project the caller may see), newest first; narrowed by status, project, who started them and when",
          security: bearer,
        },
      },
    )
    .get(
      "/projects/:id/builds/stats",
      ({ actor, params, query }) => {
        const p = projectFor(actor, params.id, "project:read");
        return statsOf([p.id], query);
      },
      {
        actor: true,
        params: ProjectId,
        query: BuildStatsQuery,
        response: { 200: BuildStats },
        detail: {
          tags: ["builds"],
          summary: "A project's build charts: duration and cache-hit ratio of the last builds, builds per day",
          security: bearer,
        },
      },
    )
    .get("/orgs/:org/builds/stats", ({ actor, params, query }) => statsOf(visibleProjects(actor, params.org), query), {
      actor: true,
      params: OrgParams,
      query: BuildStatsQuery,
      response: { 200: BuildStats },
      detail: {
        tags: ["builds"],
        summary:
          "An organization's build charts (projects the caller may see): duration and cache-hit ratio of the last builds, builds per day",
        security: bearer,
      },
    })
    .get(
      "/projects/:id/builds/events",
      ({ actor, params, request }) => {
        const p = projectFor(actor, params.id, "project:read");
        return buildsStream(actor, request, { project: p.id });
      },
      {
        actor: true,
        params: ProjectId,
        detail: streamDetail(
          "Follow a project's builds (Server-Sent Events): `build` (the Build) when one is created or changes",
        ),
      },
    )
    .get(
      "/orgs/:org/builds/events",
      ({ actor, params, request }) => {
        visibleProjects(actor, params.org); // authorized exactly like the organization's list
        return buildsStream(actor, request, { org: ctx.orgs.get(params.org).id });
      },
      {
        actor: true,
        params: t.Object({
          org: t.String({ minLength: 1, maxLength: 200, description: "an organization id or slug" }),
        }),
        detail: streamDetail(
          "Follow an organization's builds (Server-Sent Events): `build` (the Build) when one is created or changes",
        ),
      },
    )
    .get(
      "/projects/:id/builders",
      ({ actor, params }) => {
        const p = projectFor(actor, params.id, "project:read");
        const outdated = new Map(deps.builders.outdated(p.id).map((o) => [o.platform, o]));
        return deps.builders.list(p.id).map((b) => {
          const o = outdated.get(b.platform);
          return {
            platform: b.platform,
            state: b.state,
            runtime: b.runtime,
            security_profile: b.security_profile,
            emulated: b.emulated === 1,
            image: b.image,
            image_id: b.image_id,
            // A running builder on an old image or settings: what it becomes when next idle.
            image_upgrade: o
              ? { image: o.to.image, image_id: o.to.imageId, settings_changed: o.settingsChanged }
              : null,
            started_at: b.started_at,
            updated_at: b.updated_at,
            last_used_at: b.last_used_at,
            last_error: b.last_error,
          };
        });
      },
      {
        actor: true,
        params: ProjectId,
        response: { 200: t.Array(Builder) },
        detail: {
          tags: ["builders"],
          summary: "A project's builders: state, runtime, security profile, emulation, and a pending image upgrade",
          security: bearer,
        },
      },
    )
    .get(
      "/projects/:id/cache",
      async ({ actor, params }) => {
        const p = projectFor(actor, params.id, "project:read");
        const volumes = await deps.builders.cacheUsage(p.id);
        return {
          project_id: p.id,
          encryption: deps.encryption,
          size_gb: p.cache_size_gb,
          keep_days: p.cache_keep_days,
          platforms: volumes.map((v) => ({
            platform: v.platform,
            used_bytes: v.usage?.usedBytes ?? 0,
            size_bytes: v.usage?.sizeBytes ?? null,
            encryption: v.encryption,
          })),
        };
      },
      {
        actor: true,
        params: ProjectId,
        response: { 200: ProjectCache },
        detail: {
          tags: ["builders"],
          summary: "A project's build cache: usage per platform and whether it is encrypted",
          security: bearer,
        },
      },
    )
    .post(
      "/projects/:id/cache/reset",
      async ({ actor, params }) => {
        const p = projectFor(actor, params.id, "cache:reset");
        return { project_id: p.id, ...(await deps.resetCache(p.id, actor)) };
      },
      {
        actor: true,
        params: ProjectId,
        response: { 200: CacheReset },
        detail: {
          tags: ["builders"],
          summary: "Stop the project's builders and erase their caches; the next build starts empty (owners)",
          security: bearer,
        },
      },
    );
}
