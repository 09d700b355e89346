/**
 * @module web/pages/device/routes
 * The device pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const deviceRoutes: UiRoute[] = [];
