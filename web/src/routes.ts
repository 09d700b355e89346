/**
 * @module web/routes
 * What a page registers: the address pattern (preact-iso syntax, `/projects/:id`) and the
 * component. Each area lists its own in `pages/<area>/routes.tsx`; `main.tsx` joins them.
 */
import type { AnyComponent } from "preact";

export type UiRoute = {
  path: string;
  // biome-ignore lint/suspicious/noExplicitAny: each page takes its own route params
  component: AnyComponent<any>;
};
