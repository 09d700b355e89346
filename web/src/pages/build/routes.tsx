/**
 * @module web/pages/build/routes
 * The build pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const buildRoutes: UiRoute[] = [];
