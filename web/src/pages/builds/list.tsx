/**
 * @module web/pages/builds/list
 * A list of builds (one project's, or an organization's): the table, its filters kept in the
 * address's query (a filtered view can be bookmarked), pages by cursor, and live updates — a
 * changed build is updated in place; a new one appears at the top of the first page when it
 * matches the filters.
 */
import { useLocation } from "preact-iso";
import { useRef, useState } from "preact/hooks";
import type { BuildPageView, BuildView } from "../../../../src/builds/models.ts";
import type { ProjectView } from "../../../../src/projects/models.ts";
import { api, query as queryString, seg } from "../../api.ts";
import { Ago, duration, Status } from "../../components/format.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { useLive } from "../../live.ts";

const STATUSES = ["created", "running", "finished", "failed", "canceled", "expired"] as const;
const STARTERS = [
  ["user", "A person"],
  ["token", "A token"],
  ["ci", "A CI job"],
] as const;
const FILTERS = ["status", "project", "started_by", "since", "until"] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

/** Does a build (from a live event) belong in a view with these filters? */
function matches(b: BuildView, f: Filters): boolean {
  if (f.status && !f.status.split(",").includes(b.status)) return false;
  if (f.project && !f.project.split(",").includes(b.project_id)) return false;
  if (f.started_by && b.started_by_kind !== f.started_by) return false;
  const at = Date.parse(b.created_at);
  if (f.since && at < Date.parse(f.since)) return false;
  if (f.until && at >= Date.parse(f.until)) return false;
  return true;
}

/** "3/4 (75 %)": cached steps of all steps. */
export function cachedRatio(b: Pick<BuildView, "step_count" | "cached_step_count">): string {
  if (!b.step_count) return "—";
  const cached = b.cached_step_count ?? 0;
  return `${cached}/${b.step_count} (${Math.round((cached / b.step_count) * 100)} %)`;
}

export function BuildsList(props: {
  /** The list's API address (…/builds), also the stream's base (…/builds/events). */
  api: string;
  /** The organization's projects: a project column and filter (organization lists). */
  projects?: ProjectView[];
}) {
  const { path, query, route } = useLocation();
  const filters: Filters = {};
  for (const k of FILTERS) if (query[k]) filters[k] = query[k];
  const cursor = query.cursor || undefined;
  // Cursors of the pages before this one, for "Previous page" (a bookmarked page starts afresh).
  const [previous, setPrevious] = useState<(string | undefined)[]>([]);
  const apiFilters = {
    ...filters,
    since: filters.since && dayStart(filters.since),
    until: filters.until && dayStart(filters.until, 1),
  };
  const page = useApi<BuildPageView>(`${props.api}${queryString({ ...apiFilters, cursor, limit: 25 })}`);

  useLive(
    `${props.api}/events`,
    ({ data }) => {
      const b = data as BuildView;
      const current = page.data;
      if (!current || typeof b?.id !== "string") return;
      const known = current.builds.find((x) => x.id === b.id);
      if (known && known.status === b.status) {
        // Progress of a build shown: merge what the event carries, keep what the list had.
        page.set({ ...current, builds: current.builds.map((x) => (x.id === b.id ? { ...x, ...definedOf(b) } : x)) });
        return;
      }
      if (!known && (cursor || !matches(b, apiFilters))) return;
      // New here, or its status changed: the build as the API describes it in full (who started
      // it in words, its duration and cached steps), then in place or at the top.
      void api.get<BuildView>(`/api/v1/builds/${seg(b.id)}`).then(
        (full) => {
          const now = latest.current;
          if (!now) return;
          const i = now.builds.findIndex((x) => x.id === full.id);
          if (i >= 0) page.set({ ...now, builds: now.builds.map((x) => (x.id === full.id ? full : x)) });
          else page.set({ ...now, builds: [full, ...now.builds] });
        },
        () => {},
      );
    },
    ["build"],
  );
  const latest = useRef(page.data);
  latest.current = page.data;

  const go = (q: Record<string, string | undefined>) => route(`${path}${queryString(q)}`);
  const apply = (ev: Event) => {
    ev.preventDefault();
    const data = new FormData(ev.currentTarget as HTMLFormElement);
    const next: Record<string, string | undefined> = {};
    for (const k of FILTERS) next[k] = (data.get(k) as string | null) || undefined;
    setPrevious([]);
    go(next);
  };
  const project = (id: string) => props.projects?.find((p) => p.id === id)?.name;

  return (
    <>
      <form class="filters" aria-label="Filter builds" onSubmit={apply}>
        <div class="field">
          <label for="f-status">Status</label>
          <select id="f-status" name="status" value={filters.status ?? ""}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        {props.projects && (
          <div class="field">
            <label for="f-project">Project</label>
            <select id="f-project" name="project" value={filters.project ?? ""}>
              <option value="">Any project</option>
              {props.projects.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </div>
        )}
        <div class="field">
          <label for="f-started_by">Started by</label>
          <select id="f-started_by" name="started_by" value={filters.started_by ?? ""}>
            <option value="">Anyone</option>
            {STARTERS.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-since">From (day)</label>
          <input id="f-since" name="since" type="date" value={filters.since ?? ""} />
        </div>
        <div class="field">
          <label for="f-until">To (day, included)</label>
          <input id="f-until" name="until" type="date" value={filters.until ?? ""} />
        </div>
        <div class="actions">
          <button type="submit">Apply filters</button>
          {Object.keys(filters).length > 0 && (
            <a href={path} onClick={() => setPrevious([])}>
              Clear filters
            </a>
          )}
        </div>
      </form>
      <Loaded from={page}>
        {(p) => (
          <>
            {p.builds.length === 0 ? (
              <p class="empty">{Object.keys(filters).length ? "No build matches these filters." : "No builds yet."}</p>
            ) : (
              <div class="table-wrap">
                <table class="builds">
                  <caption class="visually-hidden">Builds, newest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">Status</th>
                      <th scope="col">Build</th>
                      {props.projects && <th scope="col">Project</th>}
                      <th scope="col">Started by</th>
                      <th scope="col">When</th>
                      <th scope="col">Duration</th>
                      <th scope="col">Platforms</th>
                      <th scope="col">Cached steps</th>
                      <th scope="col">Outputs</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.builds.map((b) => (
                      <tr key={b.id} data-build={b.id}>
                        <td>
                          <Status status={b.status} />
                        </td>
                        <td>
                          <a href={`/builds/${seg(b.id)}`} class="mono">
                            {b.id}
                          </a>
                        </td>
                        {props.projects && <td>{b.project_name ?? project(b.project_id) ?? b.project_id}</td>}
                        <td>
                          {b.started_by_name ?? b.started_by}
                          {b.started_by_kind && b.started_by_kind !== "user" && (
                            <small class="starter-kind"> ({starterKind(b.started_by_kind)})</small>
                          )}
                        </td>
                        <td>
                          <Ago at={b.created_at} />
                        </td>
                        <td>{b.duration_seconds == null ? "—" : duration(b.duration_seconds * 1000)}</td>
                        <td>{b.platforms.length ? b.platforms.join(", ") : "—"}</td>
                        <td>{cachedRatio(b)}</td>
                        <td>{b.outputs?.length ? b.outputs.join(", ") : "—"}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <nav class="pager" aria-label="Pages of builds">
              {cursor && (
                <button
                  type="button"
                  onClick={() => {
                    const back = previous.at(-1);
                    setPrevious(previous.slice(0, -1));
                    go({ ...filters, cursor: back });
                  }}
                >
                  Previous page
                </button>
              )}
              {p.next_cursor && (
                <button
                  type="button"
                  onClick={() => {
                    setPrevious([...previous, cursor]);
                    go({ ...filters, cursor: p.next_cursor! });
                  }}
                >
                  Next page
                </button>
              )}
            </nav>
          </>
        )}
      </Loaded>
    </>
  );
}

function starterKind(kind: string): string {
  return kind === "ci" ? "CI" : kind;
}

/** A day (YYYY-MM-DD, the viewer's own) as the UTC instant it starts at, `plus` days later. */
function dayStart(day: string, plus = 0): string | undefined {
  const [y, m, d] = day.split("-").map(Number);
  if (!y || !m || !d) return undefined;
  return new Date(y, m - 1, d + plus).toISOString();
}

function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The stream of a list (its API address + /events); exported for the pages. */
export const listApi = {
  project: (id: string) => `/api/v1/projects/${seg(id)}/builds`,
  org: (org: string) => `/api/v1/orgs/${seg(org)}/builds`,
};
