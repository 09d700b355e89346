/**
 * @module web/pages/admin/routes
 * The admin pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const adminRoutes: UiRoute[] = [];
