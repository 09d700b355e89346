/**
 * @module web/pages/egress/routes
 * The egress pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const egressRoutes: UiRoute[] = [];
