/**
 * @module api/routes/web
 * The embedded web UI: one page shell for every address a person opens in a browser (the UI
 * routes on its own, and answers an unknown address with its not-found page), and its files
 * under `/ui/`. Anything not asking for HTML, and everything under `/api/`, gets the API's
 * problem document instead.
 */
import { Elysia } from "elysia";
import { NotFoundError } from "../../errors.ts";
import { webAssets } from "../../web/assets.ts";

/** No inline script or style anywhere: the shell loads one module and one stylesheet. */
const HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "referrer-policy": "same-origin",
  "cache-control": "no-cache",
};

export function webRoutes() {
  const asset = (name: string) => {
    const a = webAssets[name];
    if (!a) throw new NotFoundError(`no such file: ${name}`);
    return new Response(a.body, { headers: { ...HEADERS, "content-type": a.type } });
  };
  const shell = () => asset("/index.html");
  return (
    new Elysia({ name: "routes/web" })
      .get("/", shell, { detail: { hide: true } })
      // Addresses handed out (a build's build_url, the device login's verification_uri) and the
      // sign-in page answer with the shell whatever the client asks for.
      .get("/login", shell, { detail: { hide: true } })
      .get("/device", shell, { detail: { hide: true } })
      .get("/builds/:id", shell, { detail: { hide: true } })
      .get("/ui/*", ({ params }) => asset(`/${params["*"]}`), { detail: { hide: true } })
      .get(
        "/*",
        ({ path, request }) => {
          const wantsPage = (request.headers.get("accept") ?? "").includes("text/html");
          if (!wantsPage || path.startsWith("/api/")) throw new NotFoundError("no such resource or route");
          return shell();
        },
        { detail: { hide: true } },
      )
  );
}
