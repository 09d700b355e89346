/**
 * @module web/pages/orgs/routes
 * The orgs pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { AuditPage } from "./audit.tsx";
import { MembersPage } from "./members.tsx";
import { OrgSettingsPage } from "./settings.tsx";

export const orgsRoutes: UiRoute[] = [
  { path: "/orgs/:org/members", component: MembersPage },
  { path: "/orgs/:org/audit", component: AuditPage },
  { path: "/orgs/:org/settings", component: OrgSettingsPage },
];
