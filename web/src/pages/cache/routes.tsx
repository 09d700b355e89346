/**
 * @module web/pages/cache/routes
 * The cache pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { CachePage } from "./cache.tsx";

export const cacheRoutes: UiRoute[] = [{ path: "/projects/:id/cache", component: CachePage }];
