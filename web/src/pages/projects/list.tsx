/**
 * @module web/pages/projects/list
 * `/orgs/:org/projects`: the organization's projects, each with a health strip of its last
 * builds and when it last built; owners create projects here (the name checked by the API, its
 * message shown at the field), then land on the new project.
 */
import { useLocation } from "preact-iso";
import { useState } from "preact/hooks";
import type { ProjectListedView, ProjectView } from "../../../../src/projects/models.ts";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues, useAction } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { projectPath } from "../../frames/project.tsx";
import { canOwn, findOrg, useSession } from "../../session.tsx";
import { NotFound } from "../errors.tsx";
import { fieldOrForm } from "./errors.ts";

type RecentBuild = NonNullable<ProjectListedView["recent_builds"]>[number];

/** The last builds as marks, oldest on the left; each says its status to screen readers. */
export function HealthStrip(props: { builds: RecentBuild[] | undefined }) {
  const builds = [...(props.builds ?? [])].reverse();
  if (builds.length === 0) return <span class="empty">no builds yet</span>;
  return (
    <span class="strip">
      {builds.map((b) => (
        <span key={b.id} class={b.status} role="img" aria-label={b.status} title={`${b.status}, ${b.created_at}`} />
      ))}
    </span>
  );
}

function CreateProject(props: { org: string; onCancel: () => void }) {
  const { route } = useLocation();
  const create = useAction(async (name: string) => {
    const p = await api.post<ProjectView>(`/api/v1/orgs/${seg(props.org)}/projects`, { name });
    route(projectPath(p.id));
  });
  return (
    <form class="inline-form" aria-label="New project" onSubmit={(ev) => void create.run(formValues(ev).name ?? "")}>
      <Field label="Name" name="name" error={create.error} autoFocus autoComplete="off" />
      <div class="actions">
        <button type="submit" class="primary" disabled={create.busy}>
          Create project
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
      <FormError error={fieldOrForm(create.error, ["name"])} />
    </form>
  );
}

export function ProjectsPage(props: { org: string }) {
  const session = useSession();
  const org = findOrg(session, props.org);
  const projects = useApi<ProjectListedView[]>(org ? `/api/v1/orgs/${seg(org.slug)}/projects` : null);
  const [creating, setCreating] = useState(false);
  if (!org) return <NotFound />;
  const owner = canOwn(session, org);
  return (
    <>
      <div class="page-head">
        <h1>Projects of {org.name}</h1>
        {owner && !creating && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New project
          </button>
        )}
      </div>
      {owner && creating && <CreateProject org={org.slug} onCancel={() => setCreating(false)} />}
      <Loaded from={projects}>
        {(list) =>
          list.length === 0 ? (
            <p class="empty">No projects yet.</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Project</th>
                    <th scope="col">Recent builds (oldest to newest)</th>
                    <th scope="col">Last build</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((p) => (
                    <tr key={p.id}>
                      <td>
                        <a href={projectPath(p.id)}>{p.name}</a>
                      </td>
                      <td>
                        <HealthStrip builds={p.recent_builds} />
                      </td>
                      <td>{p.recent_builds?.[0] ? <Ago at={p.recent_builds[0].created_at} /> : "never"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}
