/**
 * @module web/pages/orgs/routes
 * The orgs pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const orgsRoutes: UiRoute[] = [];
