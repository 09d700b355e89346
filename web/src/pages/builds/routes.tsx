/**
 * @module web/pages/builds/routes
 * The builds pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const buildsRoutes: UiRoute[] = [];
