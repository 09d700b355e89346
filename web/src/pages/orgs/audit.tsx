/**
 * @module web/pages/orgs/audit
 * `/orgs/:org/audit`: the organization's audit log (owners), newest first: who did what to
 * what, when and from where; narrowed by who, by action (or a family: `member`), by a time
 * range; a page at a time, older and newer.
 */
import type { AuditEntryView, OrgView } from "../../../../src/orgs/models.ts";
import { ApiError, query, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { OrgFrame } from "../../frames/org.tsx";
import { useState } from "preact/hooks";

export const AUDIT_PAGE_SIZE = 25;

type Filters = { actor?: string; action?: string; since?: string; until?: string };

export function AuditPage(props: { org: string }) {
  return (
    <OrgFrame org={props.org} title="Audit log">
      {(org, owner) =>
        owner ? <AuditLog key={org.id} org={org} /> : <p>Only the organization's owners read its audit log.</p>
      }
    </OrgFrame>
  );
}

/** A datetime-local value (the browser's time zone) as RFC 3339 in UTC, or undefined. */
function rfc3339(local: string | undefined): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function AuditLog(props: { org: OrgView }) {
  const [filters, setFilters] = useState<Filters>({});
  // The ids each older page started before: the stack back to the newest page.
  const [cursors, setCursors] = useState<number[]>([]);
  const before = cursors[cursors.length - 1];
  const path = `/api/v1/orgs/${seg(props.org.id)}/audit${query({
    ...filters,
    before,
    // One more than shown: whether an older page exists.
    limit: AUDIT_PAGE_SIZE + 1,
  })}`;
  const log = useApi<AuditEntryView[]>(path);
  const filtered = Object.values(filters).some((v) => v);
  return (
    <>
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(ev) => {
          const v = formValues(ev);
          setCursors([]);
          setFilters({
            actor: v.actor?.trim() || undefined,
            action: v.action?.trim() || undefined,
            since: rfc3339(v.since),
            until: rfc3339(v.until),
          });
        }}
        onReset={() => {
          setCursors([]);
          setFilters({});
        }}
      >
        <Field label="Who" name="actor" hint="a username, or token:tok_…" error={log.error} />
        <Field label="Action" name="action" hint="e.g. member.add, or member for all" error={log.error} />
        <Field label="From" name="since" type="datetime-local" error={log.error} />
        <Field label="Until" name="until" type="datetime-local" error={log.error} />
        <div class="actions">
          <button type="submit" class="primary">
            Filter
          </button>
          <button type="reset">Clear filters</button>
        </div>
      </form>
      {/* A filter the API refused: its message by the form, not an error page. */}
      {log.error instanceof ApiError && log.error.status === 400 ? (
        <FormError error={log.error} />
      ) : (
        <Loaded from={log}>
          {(entries) => {
            const shown = entries.slice(0, AUDIT_PAGE_SIZE);
            const older = entries.length > AUDIT_PAGE_SIZE;
            return (
              <>
                {shown.length === 0 ? (
                  <p class="empty">{filtered ? "No entries match these filters." : "Nothing recorded yet."}</p>
                ) : (
                  <div class="table-wrap">
                    <table class="audit">
                      <caption class="visually-hidden">Audit log of {props.org.name}, newest first</caption>
                      <thead>
                        <tr>
                          <th scope="col">When</th>
                          <th scope="col">Who</th>
                          <th scope="col">What</th>
                          <th scope="col">On what</th>
                          <th scope="col">Details</th>
                          <th scope="col">From</th>
                        </tr>
                      </thead>
                      <tbody>
                        {shown.map((e) => (
                          <AuditRow key={e.id} entry={e} />
                        ))}
                      </tbody>
                    </table>
                  </div>
                )}
                <nav class="pager" aria-label="Audit log pages">
                  <button
                    type="button"
                    disabled={cursors.length === 0}
                    onClick={() => setCursors(cursors.slice(0, -1))}
                  >
                    Newer entries
                  </button>
                  <button
                    type="button"
                    disabled={!older}
                    onClick={() => {
                      const last = shown[shown.length - 1];
                      if (last) setCursors([...cursors, last.id]);
                    }}
                  >
                    Older entries
                  </button>
                </nav>
              </>
            );
          }}
        </Loaded>
      )}
    </>
  );
}

function AuditRow(props: { entry: AuditEntryView }) {
  const e = props.entry;
  const details = Object.entries(e.details).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  return (
    <tr data-audit={e.id}>
      <td>
        <Ago at={e.at} />
      </td>
      <td>{e.actor_name ? <span title={e.actor}>{e.actor_name}</span> : <code>{e.actor}</code>}</td>
      <td>
        <code>{e.action}</code>
        {e.outcome === "failure" && (
          <>
            {" "}
            <span class="status status-failed">failed</span>
          </>
        )}
      </td>
      <td>
        {e.target_name ? (
          <span title={e.target ?? undefined}>{e.target_name}</span>
        ) : e.target ? (
          <code>{e.target}</code>
        ) : (
          "—"
        )}
      </td>
      <td>{details.length ? details.join(", ") : "—"}</td>
      <td>{e.ip ?? "—"}</td>
    </tr>
  );
}
