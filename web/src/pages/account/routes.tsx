/**
 * @module web/pages/account/routes
 * The account pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const accountRoutes: UiRoute[] = [];
