/**
 * @module web/pages/projects/settings
 * `/projects/:id/settings`: rename the project and change every setting (builder size and
 * timeouts, cache size and retention, and the registry's retention) in one form whose values
 * the API checks, its message shown at the field; delete the project after a confirmation.
 * Members who are not owners see the values and no controls.
 */
import { useLocation } from "preact-iso";
import { useState } from "preact/hooks";
import type { ProjectView } from "../../../../src/projects/models.ts";
import type { RegistryUsageView } from "../../../../src/registry/models.ts";
import { api, ApiError, seg } from "../../api.ts";
import { ConfirmButton, Field, FormError, useAction } from "../../components/forms.tsx";
import { useApi } from "../../data.tsx";
import { ProjectFrame } from "../../frames/project.tsx";
import { canOwn, findOrg, useSession } from "../../session.tsx";
import { fieldOrForm } from "./errors.ts";

type SettingKey = Exclude<keyof ProjectView, "id" | "org_id" | "name" | "created_at">;

/** The settings in the order shown, with their labels (the API's fields). */
const SETTINGS: readonly (readonly [SettingKey, string])[] = [
  ["cache_size_gb", "Cache size (GB per platform)"],
  ["cache_keep_days", "Cache retention (days)"],
  ["builder_cpus", "Builder CPUs"],
  ["builder_memory_mb", "Builder memory (MB)"],
  ["builder_idle_timeout_seconds", "Idle timeout (seconds before an idle builder stops)"],
  ["build_timeout_seconds", "Build timeout (seconds)"],
];
const RETENTION = "retention_days";
const FIELDS = ["name", ...SETTINGS.map(([k]) => k), RETENTION];

/** A number as typed, sent as a number; anything else sent as typed, for the API to name. */
const asNumber = (v: string): number | string => (v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v);

function valuesOf(p: ProjectView, retention: number | undefined): Record<string, string> {
  const v: Record<string, string> = { name: p.name };
  for (const [k] of SETTINGS) v[k] = String(p[k]);
  if (retention !== undefined) v[RETENTION] = String(retention);
  return v;
}

function ReadOnly(props: { project: ProjectView; retention: number | undefined }) {
  const p = props.project;
  return (
    <dl class="settings-list">
      <dt>Name</dt>
      <dd>{p.name}</dd>
      {SETTINGS.map(([k, label]) => [<dt key={`${k}-t`}>{label}</dt>, <dd key={k}>{p[k]}</dd>])}
      {props.retention !== undefined && [
        <dt key="r-t">Registry retention (days)</dt>,
        <dd key="r">{props.retention}</dd>,
      ]}
    </dl>
  );
}

function SettingsForm(props: {
  project: ProjectView;
  registry: RegistryUsageView | undefined;
  onSaved: (p: ProjectView, r: RegistryUsageView | undefined) => void;
}) {
  const { project, registry } = props;
  const [values, setValues] = useState(() => valuesOf(project, registry?.retention_days));
  const [saved, setSaved] = useState(false);
  const save = useAction(async () => {
    setSaved(false);
    const patch: Record<string, unknown> = { name: values.name };
    for (const [k] of SETTINGS) patch[k] = asNumber(values[k] ?? "");
    const p = await api.patch<ProjectView>(`/api/v1/projects/${seg(project.id)}`, patch);
    let r = registry;
    if (registry && values[RETENTION] !== String(registry.retention_days)) {
      try {
        r = await api.put<RegistryUsageView>(`/api/v1/projects/${seg(project.id)}/registry`, {
          retention_days: asNumber(values[RETENTION] ?? ""),
        });
      } catch (e) {
        // The project's own settings are saved by now: show them, and the retention's message.
        props.onSaved(p, registry);
        throw e;
      }
    }
    props.onSaved(p, r);
    setSaved(true);
  });
  const set = (k: string) => (v: string) => setValues((old) => ({ ...old, [k]: v }));
  return (
    <form
      aria-label="Project settings"
      onSubmit={(ev) => {
        ev.preventDefault();
        void save.run();
      }}
    >
      <Field label="Name" name="name" value={values.name} onInput={set("name")} error={save.error} />
      <fieldset>
        <legend>Builders and cache</legend>
        {SETTINGS.map(([k, label]) => (
          <Field key={k} label={label} name={k} type="number" value={values[k]} onInput={set(k)} error={save.error} />
        ))}
      </fieldset>
      {registry && (
        <fieldset>
          <legend>Registry</legend>
          <Field
            label="Registry retention (days)"
            name={RETENTION}
            type="number"
            value={values[RETENTION]}
            onInput={set(RETENTION)}
            error={save.error}
            hint="days a saved image is kept after its last push (0: until the next collection)"
          />
        </fieldset>
      )}
      <FormError error={fieldOrForm(save.error, FIELDS)} />
      <div class="actions">
        <button type="submit" class="primary" disabled={save.busy}>
          Save settings
        </button>
        {saved && !save.busy && <span role="status">Saved.</span>}
      </div>
    </form>
  );
}

export function ProjectSettingsPage(props: { id: string }) {
  const session = useSession();
  const { route } = useLocation();
  const registry = useApi<RegistryUsageView>(`/api/v1/projects/${seg(props.id)}/registry`);
  // No registry on this appliance (or none for this caller): the page goes on without it.
  const registryGone = registry.error instanceof ApiError;
  return (
    <ProjectFrame id={props.id} title="Settings">
      {(project, loaded) => {
        const org = findOrg(session, project.org_id);
        if (!registry.data && !registryGone)
          return (
            <p class="loading" role="status">
              Loading…
            </p>
          );
        if (!canOwn(session, org)) return <ReadOnly project={project} retention={registry.data?.retention_days} />;
        return (
          <>
            <SettingsForm
              project={project}
              registry={registry.data}
              onSaved={(p, r) => {
                loaded.set(p);
                if (r) registry.set(r);
              }}
            />
            <h2>Delete this project</h2>
            <p>Its builders stop and their cache is erased; its builds, tokens and trust relationships are deleted.</p>
            <ConfirmButton
              label="Delete project"
              danger
              confirmLabel="Yes, delete project"
              question={
                <>
                  Delete project <strong>{project.name}</strong>? Its builders stop and their cache is erased, and its
                  builds, tokens and trust relationships are deleted with it. This cannot be undone.
                </>
              }
              onConfirm={async () => {
                await api.delete(`/api/v1/projects/${seg(project.id)}`);
                route(`/orgs/${seg(org?.slug ?? project.org_id)}/projects`);
              }}
            />
          </>
        );
      }}
    </ProjectFrame>
  );
}
