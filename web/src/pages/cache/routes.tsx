/**
 * @module web/pages/cache/routes
 * The cache pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const cacheRoutes: UiRoute[] = [];
