/**
 * @module web/pages/orgs/settings
 * `/orgs/:org/settings`: the organization's name (owners rename it) and its quotas with the
 * usage they bound (administrators change them; everyone else reads them).
 */
import type { OrgView, QuotaKey, QuotaReportView } from "../../../../src/orgs/models.ts";
import { api, seg } from "../../api.ts";
import { Field, FormError, formValues, useAction } from "../../components/forms.tsx";
import { Loaded, type Loadable, useApi } from "../../data.tsx";
import { OrgFrame } from "../../frames/org.tsx";
import { useSession } from "../../session.tsx";
import { useState } from "preact/hooks";

/** What each quota bounds, as the page names it (the keys are the API's). */
const QUOTAS: { key: QuotaKey; label: string; usage?: keyof QuotaReportView["usage"] }[] = [
  { key: "max_projects", label: "Projects", usage: "projects" },
  { key: "max_running_builders", label: "Builders running at once", usage: "running_builders" },
  { key: "max_builder_cpus", label: "CPUs per builder" },
  { key: "max_builder_memory_mb", label: "Memory per builder (MB)" },
  { key: "max_cache_size_gb", label: "Cache per project and platform (GB)" },
];

export function OrgSettingsPage(props: { org: string }) {
  return (
    <OrgFrame org={props.org} title="Settings">
      {(org, owner) => (
        <>
          <NameForm key={org.id} org={org} owner={owner} />
          <Quotas key={org.id} org={org} />
        </>
      )}
    </OrgFrame>
  );
}

function NameForm(props: { org: OrgView; owner: boolean }) {
  const session = useSession();
  const [saved, setSaved] = useState(false);
  const rename = useAction(async (name: string) => {
    setSaved(false);
    await api.patch<OrgView>(`/api/v1/orgs/${seg(props.org.id)}`, { name });
    await session.refresh(); // the switcher and the frame show the new name
    setSaved(true);
  });
  return (
    <section aria-labelledby="org-name-title">
      <h2 id="org-name-title">Organization</h2>
      {props.owner ? (
        <form
          aria-labelledby="org-name-title"
          onSubmit={(ev) => {
            const v = formValues(ev);
            void rename.run((v.name ?? "").trim());
          }}
        >
          <Field label="Name" name="name" value={props.org.name} required error={rename.error} />
          <p class="hint">
            Its address stays <code>{props.org.slug}</code>.
          </p>
          <FormError error={rename.error} />
          {saved && <p role="status">Saved.</p>}
          <button type="submit" class="primary" disabled={rename.busy}>
            Save settings
          </button>
        </form>
      ) : (
        <dl>
          <dt>Name</dt>
          <dd>{props.org.name}</dd>
          <dt>Address</dt>
          <dd>
            <code>{props.org.slug}</code>
          </dd>
        </dl>
      )}
    </section>
  );
}

function Quotas(props: { org: OrgView }) {
  const session = useSession();
  const report = useApi<QuotaReportView>(`/api/v1/orgs/${seg(props.org.id)}/quotas`);
  return (
    <section aria-labelledby="quotas-title">
      <h2 id="quotas-title">Quotas</h2>
      <Loaded from={report}>
        {(r) => (
          <>
            <div class="table-wrap">
              <table>
                <caption class="visually-hidden">Quotas of {props.org.name} and their usage</caption>
                <thead>
                  <tr>
                    <th scope="col">Quota</th>
                    <th scope="col" class="num">
                      Limit
                    </th>
                    <th scope="col" class="num">
                      In use
                    </th>
                    <th scope="col">Set by</th>
                  </tr>
                </thead>
                <tbody>
                  {QUOTAS.map((q) => (
                    <tr key={q.key} data-quota={q.key}>
                      <th scope="row">{q.label}</th>
                      <td class="num">{r.limits[q.key]}</td>
                      <td class="num">{q.usage ? r.usage[q.usage] : "—"}</td>
                      <td>{r.overrides[q.key] !== undefined ? "this organization" : "the default"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {session.me.is_admin ? (
              <QuotaForm org={props.org} report={r} loadable={report} />
            ) : (
              <p class="hint">An administrator of the appliance sets quotas.</p>
            )}
          </>
        )}
      </Loaded>
    </section>
  );
}

function QuotaForm(props: { org: OrgView; report: QuotaReportView; loadable: Loadable<QuotaReportView> }) {
  const [saved, setSaved] = useState(false);
  const save = useAction(async (values: Record<string, string>) => {
    setSaved(false);
    // An empty box returns the quota to the default; a number sets it for this organization.
    const patch = Object.fromEntries(QUOTAS.map((q) => [q.key, values[q.key]?.trim() ? Number(values[q.key]) : null]));
    props.loadable.set(await api.put<QuotaReportView>(`/api/v1/orgs/${seg(props.org.id)}/quotas`, patch));
    setSaved(true);
  });
  return (
    <form
      aria-labelledby="quota-form-title"
      onSubmit={(ev) => {
        void save.run(formValues(ev));
      }}
    >
      <h3 id="quota-form-title">Change quotas</h3>
      <p class="hint">Leave a box empty for the appliance's default.</p>
      {QUOTAS.map((q) => (
        <Field
          key={q.key}
          label={q.label}
          name={q.key}
          type="number"
          min={0}
          value={props.report.overrides[q.key] ?? ""}
          placeholder={`default ${props.report.defaults[q.key]}`}
          error={save.error}
        />
      ))}
      <FormError error={save.error} />
      {saved && <p role="status">Quotas saved.</p>}
      <button type="submit" class="primary" disabled={save.busy}>
        Save quotas
      </button>
    </form>
  );
}
