/**
 * @module web/pages/projects/routes
 * The projects pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { ProjectsPage } from "./list.tsx";
import { ProjectSettingsPage } from "./settings.tsx";
import { ProjectSetupPage } from "./setup.tsx";

export const projectsRoutes: UiRoute[] = [
  { path: "/orgs/:org/projects", component: ProjectsPage },
  { path: "/projects/:id/settings", component: ProjectSettingsPage },
  { path: "/projects/:id/setup", component: ProjectSetupPage },
];
