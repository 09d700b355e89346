/**
 * @module web/pages/builds/pages
 * The organization's builds (every project the caller may see) and a project's builds tab,
 * each with its list and its charts.
 */
import type { ProjectView } from "../../../../src/projects/models.ts";
import { seg } from "../../api.ts";
import { useApi } from "../../data.tsx";
import { OrgFrame } from "../../frames/org.tsx";
import { ProjectFrame } from "../../frames/project.tsx";
import { BuildCharts } from "./charts.tsx";
import { BuildsList, listApi } from "./list.tsx";

export function OrgBuildsPage(props: { org: string }) {
  return (
    <OrgFrame org={props.org} title="Builds">
      {(org) => <OrgBuilds org={org.slug} />}
    </OrgFrame>
  );
}

function OrgBuilds(props: { org: string }) {
  const projects = useApi<ProjectView[]>(`/api/v1/orgs/${seg(props.org)}/projects`);
  return (
    <>
      <section aria-labelledby="builds-title">
        <h2 id="builds-title">All builds</h2>
        <BuildsList api={listApi.org(props.org)} projects={projects.data ?? []} />
      </section>
      <BuildCharts api={listApi.org(props.org)} />
    </>
  );
}

export function ProjectBuildsPage(props: { id: string }) {
  return (
    <ProjectFrame id={props.id}>
      {(p) => (
        <>
          <section aria-labelledby="builds-title">
            <h2 id="builds-title">Builds</h2>
            <BuildsList api={listApi.project(p.id)} />
          </section>
          <BuildCharts api={listApi.project(p.id)} />
        </>
      )}
    </ProjectFrame>
  );
}
