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

export function docsRoutes({ version }: Pick<AppDeps, "version">) {
  return new Elysia({ name: "routes/docs" })
    .use(
      openapi({
        path: "/api/v1/docs",
        specPath: "/api/v1/openapi.json",
        provider: "swagger-ui",
        exclude: { staticFile: true, paths: [/^\/api\/v1\/docs/, "/", /^\/ui\//] },
        swagger: {
          cdn: `${ASSETS}/swagger-ui-bundle.js`,
          theme: `${ASSETS}/swagger-ui.css`,
          validatorUrl: "none",
        },
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
