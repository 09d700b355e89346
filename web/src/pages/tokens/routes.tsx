/**
 * @module web/pages/tokens/routes
 * The tokens pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";

export const tokensRoutes: UiRoute[] = [];
