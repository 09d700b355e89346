/**
 * @module web/pages/device/routes
 * The device pages and the addresses they answer.
 */
import type { UiRoute } from "../../routes.ts";
import { DeviceApproval } from "./approve.tsx";

export const deviceRoutes: UiRoute[] = [{ path: "/device", component: DeviceApproval }];
