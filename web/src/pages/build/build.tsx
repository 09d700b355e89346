/**
 * @module web/pages/build/build
 * One build, live: its status, who started it, its project and organization, platforms and
 * timings; the steps as a waterfall; the log as it streams, with search; the error when it
 * failed; "Cancel build" while it runs (owners and whoever started it, as the API allows). All
 * of it follows the build's event stream (one EventSource), which first replays what is stored.
 * A build the caller cannot see is the not-found page, exactly like a missing one.
 */
import type { BuildView, LogLineView, StepView } from "../../../../src/builds/models.ts";
import type { ProjectView } from "../../../../src/projects/models.ts";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, seg } from "../../api.ts";
import { Ago, duration, Status } from "../../components/format.tsx";
import { ConfirmButton } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { projectPath } from "../../frames/project.tsx";
import { useLive } from "../../live.ts";
import { canOwn, findOrg, useSession, type Session } from "../../session.tsx";
import { LogView } from "./log.tsx";
import { Waterfall } from "./waterfall.tsx";

const ACTIVE = new Set(["created", "running"]);

/** "you", a user's name, or the credential as the API records it (token:…, oidc:…). */
function starter(session: Session, startedBy: string): string {
  if (startedBy === `user:${session.me.id}`) return `you (${session.me.username})`;
  if (startedBy.startsWith("oidc:")) return `CI job ${startedBy.slice(startedBy.indexOf("#") + 1)}`;
  return startedBy;
}

export function BuildPage(props: { id: string }) {
  const first = useApi<BuildView>(`/api/v1/builds/${seg(props.id)}`);
  return <Loaded from={first}>{(b) => <LiveBuild initial={b} />}</Loaded>;
}

function LiveBuild(props: { initial: BuildView }) {
  const session = useSession();
  const [build, setBuild] = useState(props.initial);
  const [steps, setSteps] = useState<StepView[]>([]);
  // Lines go into one array (never copied); `length` is what renders. Bursts are flushed once a frame.
  const lines = useRef<LogLineView[]>([]);
  const [length, setLength] = useState(0);
  const frame = useRef<number | null>(null);
  const [ended, setEnded] = useState<boolean>(false);
  const [now, setNow] = useState(Date.now());
  const project = useApi<ProjectView>(`/api/v1/projects/${seg(build.project_id)}`);
  const org = findOrg(session, build.org_id);
  const active = ACTIVE.has(build.status);

  useLive(
    // Log lines in events of up to 500 (`logs`): one event per line made a 10,000-line log slow to arrive.
    ended ? null : `/api/v1/builds/${seg(props.initial.id)}/events?log_batch=500`,
    (e) => {
      if (e.event === "build" || e.event === "end") setBuild(e.data as BuildView);
      if (e.event === "end") setEnded(true); // the server closed it; EventSource must not reconnect
      if (e.event === "step") {
        const s = e.data as StepView;
        setSteps((all) => {
          const i = all.findIndex((x) => x.digest === s.digest);
          return i < 0 ? [...all, s] : all.map((x, n) => (n === i ? s : x));
        });
      }
      if (e.event === "logs") {
        for (const line of e.data as LogLineView[]) lines.current.push(line);
        frame.current ??= requestAnimationFrame(() => {
          frame.current = null;
          setLength(lines.current.length);
        });
      }
    },
    ["build", "step", "logs", "end"],
  );
  useEffect(() => () => void (frame.current !== null && cancelAnimationFrame(frame.current)), []);
  // Running bars and durations grow with the clock.
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [active]);

  const mayCancel = canOwn(session, org) || build.started_by === `user:${session.me.id}`;
  const end = build.finished_at ? Date.parse(build.finished_at) : now;
  const started = build.started_at ? Date.parse(build.started_at) : null;
  return (
    <>
      <p class="breadcrumb">
        {org ? <a href={`/orgs/${seg(org.slug)}/builds`}>{org.name}</a> : "Organization"} /{" "}
        <a href={projectPath(build.project_id)}>{project.data?.name ?? "project"}</a> / build
      </p>
      <div class="page-head">
        <h1>
          Build <code>{build.id}</code>
        </h1>
        <p class="build-status" role="status" aria-label="Build status">
          <Status status={build.status} />
          {build.cancel_requested_at && active ? " cancel requested" : ""}
        </p>
      </div>
      {build.error && !active && (
        <div class="build-error" role="alert">
          <h2>The build {build.status === "canceled" ? "was canceled" : build.status}</h2>
          <pre>{build.error}</pre>
        </div>
      )}
      {active && mayCancel && !build.cancel_requested_at && (
        <div class="actions">
          <ConfirmButton
            label="Cancel build"
            danger
            question={<>Cancel build {build.id}? Its client stops at its next health report.</>}
            confirmLabel="Yes, cancel it"
            onConfirm={async () => setBuild(await api.post<BuildView>(`/api/v1/builds/${seg(build.id)}/cancel`))}
          />
        </div>
      )}
      <dl class="build-facts">
        <dt>Project</dt>
        <dd>
          <a href={projectPath(build.project_id)}>{project.data?.name ?? build.project_id}</a>
        </dd>
        <dt>Organization</dt>
        <dd>{org ? <a href={`/orgs/${seg(org.slug)}/projects`}>{org.name}</a> : build.org_id}</dd>
        <dt>Started by</dt>
        <dd>{starter(session, build.started_by)}</dd>
        <dt>Platforms</dt>
        <dd>{build.platforms.length > 0 ? build.platforms.join(", ") : "—"}</dd>
        <dt>Created</dt>
        <dd>
          <Ago at={build.created_at} />
        </dd>
        <dt>Waited for a builder</dt>
        <dd>{duration((started ?? end) - Date.parse(build.created_at))}</dd>
        <dt>Ran</dt>
        <dd>{started === null ? "—" : duration(end - started)}</dd>
        {build.finished_at && (
          <>
            <dt>Ended</dt>
            <dd>
              <Ago at={build.finished_at} />
            </dd>
          </>
        )}
        {build.log_truncated && (
          <>
            <dt>Log</dt>
            <dd>cut at the appliance's limit</dd>
          </>
        )}
      </dl>
      <section aria-labelledby="steps-title">
        <h2 id="steps-title">Steps</h2>
        <Waterfall steps={steps} from={started} now={end} />
      </section>
      <LogView lines={lines.current} length={length} live={active} />
    </>
  );
}
