/**
 * @module web/frames/project
 * Every page of one project: its name, the organization it belongs to, and the tabs (builds,
 * cache, settings, tokens, trust, set up). Loads the project once; a project the caller cannot
 * see is the not-found page, exactly like a missing one.
 */
import type { ComponentChildren } from "preact";
import type { ProjectView } from "../../../src/projects/models.ts";
import { seg } from "../api.ts";
import { Tabs } from "../components/tabs.tsx";
import { Loaded, useApi, type Loadable } from "../data.tsx";
import { findOrg, useSession } from "../session.tsx";

export const PROJECT_TABS = [
  ["", "Builds"],
  ["/cache", "Cache"],
  ["/settings", "Settings"],
  ["/tokens", "Tokens"],
  ["/trust", "Trust"],
  ["/setup", "Set up"],
] as const;

/** The project's address, or one of its tabs' (`tab` as in PROJECT_TABS). */
export const projectPath = (id: string, tab = "") => `/projects/${seg(id)}${tab}`;

export function ProjectFrame(props: {
  id: string;
  /** The page's own heading (e.g. "Settings"), after the project's name. */
  title?: string;
  children: (project: ProjectView, reload: Loadable<ProjectView>) => ComponentChildren;
}) {
  const project = useApi<ProjectView>(`/api/v1/projects/${seg(props.id)}`);
  const session = useSession();
  return (
    <Loaded from={project}>
      {(p) => {
        const org = findOrg(session, p.org_id);
        return (
          <>
            <p class="breadcrumb">
              {org ? <a href={`/orgs/${seg(org.slug)}/projects`}>{org.name}</a> : "Organization"} / project
            </p>
            <h1>
              {p.name}
              {props.title ? ` — ${props.title}` : ""}
            </h1>
            <Tabs label="Project" tabs={PROJECT_TABS.map(([tab, label]) => [projectPath(p.id, tab), label] as const)} />
            {props.children(p, project)}
          </>
        );
      }}
    </Loaded>
  );
}
