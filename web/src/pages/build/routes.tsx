/**
 * @module web/pages/build/routes
 * The build pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { BuildPage } from "./build.tsx";

export const buildRoutes: UiRoute[] = [{ path: "/builds/:id", component: BuildPage }];
