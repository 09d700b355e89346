/**
 * @module web/pages/admin/orgs
 * `/admin/orgs`: every organization and creating one; `/admin/orgs/:org`: its limits (quotas in
 * force, the configured defaults, its own overrides) and its usage, editable by the administrator.
 * An empty box returns a quota to the default.
 */
import type { OrgView, QuotaKey, QuotaReportView } from "../../../../src/orgs/models.ts";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues, useAction } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { useSession } from "../../session.tsx";
import { AdminFrame } from "./frame.tsx";

/** What each quota limits, in words (typed: a quota added to the API must be named here). */
const QUOTA_LABELS: Record<QuotaKey, { label: string; unit: string }> = {
  max_projects: { label: "Projects", unit: "projects in the organization" },
  max_builder_cpus: { label: "CPUs per builder", unit: "CPUs" },
  max_builder_memory_mb: { label: "Memory per builder (MB)", unit: "MB" },
  max_cache_size_gb: { label: "Cache per project and platform (GB)", unit: "GB" },
  max_running_builders: { label: "Builders running at once", unit: "builders" },
};

export const adminOrgPath = (slug: string) => `/admin/orgs/${seg(slug)}`;

export function AdminOrgs() {
  const session = useSession();
  const orgs = useApi<OrgView[]>(session.me.is_admin ? "/api/v1/orgs" : null);
  const create = useAction(async (v: Record<string, string>, form: HTMLFormElement) => {
    await api.post<OrgView>("/api/v1/orgs", {
      slug: v.slug ?? "",
      name: v.name ?? "",
      ...(v.owner ? { owner: v.owner } : {}),
    });
    form.reset();
    await Promise.all([orgs.reload(), session.refresh()]);
  });
  return (
    <AdminFrame title="Organizations">
      <section aria-labelledby="new-org">
        <h2 id="new-org">New organization</h2>
        <form
          aria-label="New organization"
          class="inline-form"
          onSubmit={(ev) => void create.run(formValues(ev), ev.currentTarget as HTMLFormElement)}
        >
          <Field label="Slug" name="slug" error={create.error} required hint="lowercase letters, digits, dashes" />
          <Field label="Display name" name="name" error={create.error} required />
          <Field label="Owner (username; default: you)" name="owner" error={create.error} />
          <button type="submit" class="primary" disabled={create.busy}>
            Create organization
          </button>
        </form>
        <FormError error={create.error} />
      </section>
      <h2>Every organization</h2>
      <Loaded from={orgs}>
        {(list) => (
          <div class="table-wrap admin-table">
            <table aria-label="Organizations">
              <thead>
                <tr>
                  <th scope="col">Slug</th>
                  <th scope="col">Name</th>
                  <th scope="col">Created</th>
                  <th scope="col">Limits</th>
                </tr>
              </thead>
              <tbody>
                {list.map((o) => (
                  <tr key={o.id}>
                    <th scope="row">
                      <a href={`/orgs/${seg(o.slug)}/projects`}>{o.slug}</a>
                    </th>
                    <td>{o.name}</td>
                    <td>
                      <Ago at={o.created_at} />
                    </td>
                    <td>
                      <a href={adminOrgPath(o.slug)}>Limits of {o.slug}</a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
    </AdminFrame>
  );
}

export function AdminOrgLimits(props: { org: string }) {
  const session = useSession();
  const quotas = useApi<QuotaReportView>(session.me.is_admin ? `/api/v1/orgs/${seg(props.org)}/quotas` : null);
  const save = useAction(async (v: Record<string, string>) => {
    const body: Partial<Record<QuotaKey, number | null>> = {};
    for (const k of Object.keys(QUOTA_LABELS) as QuotaKey[]) {
      const raw = (v[k] ?? "").trim();
      body[k] = raw === "" ? null : Number(raw);
    }
    quotas.set(await api.put<QuotaReportView>(`/api/v1/orgs/${seg(props.org)}/quotas`, body));
  });
  return (
    <AdminFrame title={`Limits of ${props.org}`}>
      <p>
        <a href="/admin/orgs">All organizations</a>
      </p>
      <Loaded from={quotas}>
        {(q) => (
          <>
            <h2>Usage</h2>
            <div class="cards">
              <div class="card">
                <div>Projects</div>
                <div class="value" data-testid="usage-projects">
                  {q.usage.projects} of {q.limits.max_projects}
                </div>
              </div>
              <div class="card">
                <div>Builders running</div>
                <div class="value" data-testid="usage-builders">
                  {q.usage.running_builders} of {q.limits.max_running_builders}
                </div>
              </div>
            </div>
            <h2>Limits</h2>
            <form aria-label="Limits" onSubmit={(ev) => void save.run(formValues(ev))}>
              {(Object.keys(QUOTA_LABELS) as QuotaKey[]).map((k) => (
                <Field
                  key={`${k}-${q.overrides[k] ?? ""}`}
                  label={QUOTA_LABELS[k].label}
                  name={k}
                  type="number"
                  value={q.overrides[k] ?? ""}
                  placeholder={String(q.defaults[k])}
                  error={save.error}
                  hint={`in force: ${q.limits[k]} ${QUOTA_LABELS[k].unit}; default ${q.defaults[k]}${q.overrides[k] === undefined ? "" : " (overridden)"}; empty returns to the default`}
                />
              ))}
              <FormError error={save.error} />
              <button type="submit" class="primary" disabled={save.busy}>
                Save limits
              </button>
            </form>
          </>
        )}
      </Loaded>
    </AdminFrame>
  );
}
