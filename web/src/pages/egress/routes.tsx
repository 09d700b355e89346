/**
 * @module web/pages/egress/routes
 * The egress pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { EgressPage } from "./egress.tsx";

export const egressRoutes: UiRoute[] = [{ path: "/orgs/:org/egress", component: EgressPage }];
