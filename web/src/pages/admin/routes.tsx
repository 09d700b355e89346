/**
 * @module web/pages/admin/routes
 * The admin pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { AdminBuilders } from "./builders.tsx";
import { AdminCa } from "./ca.tsx";
import { AdminOrgLimits, AdminOrgs } from "./orgs.tsx";
import { AdminStatus } from "./status.tsx";
import { AdminUsers } from "./users.tsx";

export const adminRoutes: UiRoute[] = [
  { path: "/admin", component: AdminStatus },
  { path: "/admin/status", component: AdminStatus },
  { path: "/admin/users", component: AdminUsers },
  { path: "/admin/orgs", component: AdminOrgs },
  { path: "/admin/orgs/:org", component: AdminOrgLimits },
  { path: "/admin/builders", component: AdminBuilders },
  { path: "/admin/ca", component: AdminCa },
];
