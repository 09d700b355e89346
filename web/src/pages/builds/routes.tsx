/**
 * @module web/pages/builds/routes
 * The builds pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { OrgBuildsPage, ProjectBuildsPage } from "./pages.tsx";

export const buildsRoutes: UiRoute[] = [
  { path: "/orgs/:org/builds", component: OrgBuildsPage },
  { path: "/projects/:id", component: ProjectBuildsPage },
];
