/**
 * @module api/routes/web
 * The embedded web UI: `/` and `/ui/*`.
 */
import { Elysia } from "elysia";
import { NotFoundError } from "../../errors.ts";
import { webAssets } from "../../web/assets.ts";

const HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
};

export function webRoutes() {
  const asset = (name: string) => {
    const a = webAssets[name];
    if (!a) throw new NotFoundError(`no such page: ${name}`);
    return new Response(a.body, { headers: { ...HEADERS, "content-type": a.type } });
  };
  return (
    new Elysia({ name: "routes/web" })
      .get("/", () => asset("/index.html"), { detail: { hide: true } })
      .get("/device", () => asset("/device.html"), { detail: { hide: true } })
      // A build's page (the build_url the build API hands out).
      .get("/builds/:id", () => asset("/build.html"), { detail: { hide: true } })
      .get("/ui/*", ({ params }) => asset(`/${params["*"]}`), { detail: { hide: true } })
  );
}
