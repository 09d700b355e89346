/**
 * @module web/assets
 * The web UI's files, embedded in the binary, and the API docs page's assets (Swagger UI from
 * the swagger-ui-dist package, embedded as files by `bun build --compile`).
 */
import { embeddedWebAssets } from "./embed.macro.ts" with { type: "macro" };
import swaggerBundle from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };

export const webAssets: Record<string, { type: string; body: string }> = embeddedWebAssets();

/** Files the docs page loads, by the name it asks for. */
export const docsAssets: Record<string, { type: string; file: string }> = {
  "swagger-ui-bundle.js": { type: "text/javascript; charset=utf-8", file: swaggerBundle },
  "swagger-ui.css": { type: "text/css; charset=utf-8", file: swaggerCss },
};
