/**
 * @module api/routes/docs
 * The OpenAPI document at /api/v1/openapi.json and a docs page at /api/v1/docs whose scripts
 * and styles are served from the binary itself, so it works with no internet.
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import { NotFoundError } from "../../errors.ts";
import { docsAssets } from "../../web/assets.ts";
import type { AppDeps } from "../app.ts";

const ASSETS = "/api/v1/docs/assets";
const SPEC = "/api/v1/openapi.json";

/** The page's one inline script, allowed by its hash and nothing else (DOCS_CSP). */
const INIT_SCRIPT = `window.ui = SwaggerUIBundle({ url: "${SPEC}", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true });`;

/**
 * Scripts, styles and requests from this server only (the inline init by its hash; Swagger UI
 * sets inline styles), never framed.
 */
export const DOCS_CSP = `default-src 'self'; script-src 'self' 'sha256-${new Bun.CryptoHasher("sha256").update(INIT_SCRIPT).digest("base64")}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'`;

/** Swagger UI from the binary's own assets; validatorUrl null keeps it from calling out. */
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Slipway API</title>
  <link rel="stylesheet" href="${ASSETS}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${ASSETS}/swagger-ui-bundle.js"></script>
  <script>${INIT_SCRIPT}</script>
</body>
</html>
`;

export function docsRoutes({ version }: Pick<AppDeps, "version">) {
  return new Elysia({ name: "routes/docs" })
    .use(
      openapi({
        path: "/api/v1/docs",
        specPath: SPEC,
        // The plugin's own page points at the spec by a relative URL that breaks below /api/v1;
        // the page is ours (DOCS_PAGE), the plugin only builds the document.
        provider: null,
        exclude: { staticFile: true, paths: [/^\/api\/v1\/docs/, "/", /^\/ui\//] },
        documentation: {
          info: {
            title: "Slipway API",
            version,
            description: "Management API of a Slipway build appliance. Errors are RFC 9457 problem+json.",
          },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        },
      }),
    )
    .get("/api/v1/docs", () => new Response(DOCS_PAGE, { headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": DOCS_CSP } }), { detail: { hide: true } })
    .get(
      `${ASSETS}/:name`,
      ({ params }) => {
        const a = docsAssets[params.name];
        if (!a) throw new NotFoundError(`no such asset: ${params.name}`);
        return new Response(Bun.file(a.file), { headers: { "content-type": a.type, "cache-control": "public, max-age=86400" } });
      },
      { detail: { hide: true } },
    );
}
