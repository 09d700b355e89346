/**
 * @module web/pages/projects/routes
 * The projects pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const projectsRoutes: UiRoute[] = [];
