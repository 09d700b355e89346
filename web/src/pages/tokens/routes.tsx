/**
 * @module web/pages/tokens/routes
 * The tokens pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { AccountTokens, OrgTokens, ProjectTokens } from "./pages.tsx";
import { ProjectTrust } from "./trust.tsx";

export const tokensRoutes: UiRoute[] = [
  { path: "/account/tokens", component: AccountTokens },
  { path: "/orgs/:org/tokens", component: OrgTokens },
  { path: "/projects/:id/tokens", component: ProjectTokens },
  { path: "/projects/:id/trust", component: ProjectTrust },
];
