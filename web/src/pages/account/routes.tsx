/**
 * @module web/pages/account/routes
 * The account pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { AccountPage } from "./account.tsx";

export const accountRoutes: UiRoute[] = [{ path: "/account", component: AccountPage }];
