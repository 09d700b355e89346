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

/** Each file's body, its gzip form and its ETag, made on first use and kept (the files never change). */
type Prepared = { type: string; body: string; gzip: Uint8Array; etag: string };

export function webRoutes() {
  const prepared = new Map<string, Prepared>();
  const prepare = (name: string): Prepared | undefined => {
    const a = webAssets[name];
    if (!a) return undefined;
    let p = prepared.get(name);
    if (!p) {
      p = { ...a, gzip: Bun.gzipSync(a.body), etag: `"${Bun.hash(a.body).toString(36)}"` };
      prepared.set(name, p);
    }
    return p;
  };
  // Revalidated on every load (no-cache) but answered 304 when unchanged; gzip when the client takes it.
  const asset = (name: string, request: Request) => {
    const a = prepare(name);
    if (!a) throw new NotFoundError(`no such file: ${name}`);
    const headers: Record<string, string> = {
      ...HEADERS,
      "content-type": a.type,
      etag: a.etag,
      vary: "accept-encoding",
    };
    if (request.headers.get("if-none-match") === a.etag) return new Response(null, { status: 304, headers });
    if (/\bgzip\b/.test(request.headers.get("accept-encoding") ?? ""))
      return new Response(a.gzip, { headers: { ...headers, "content-encoding": "gzip" } });
    return new Response(a.body, { headers });
  };
  const shell = ({ request }: { request: Request }) => asset("/index.html", request);
  return (
    new Elysia({ name: "routes/web" })
      .get("/", shell, { detail: { hide: true } })
      // Addresses handed out (a build's build_url, the device login's verification_uri) and the
      // sign-in page answer with the shell whatever the client asks for.
      .get("/login", shell, { detail: { hide: true } })
      .get("/device", shell, { detail: { hide: true } })
      .get("/builds/:id", shell, { detail: { hide: true } })
      .get("/ui/*", ({ params, request }) => asset(`/${params["*"]}`, request), { detail: { hide: true } })
      .get(
        "/*",
        ({ path, request }) => {
          const wantsPage = (request.headers.get("accept") ?? "").includes("text/html");
          if (!wantsPage || path.startsWith("/api/")) throw new NotFoundError("no such resource or route");
          return shell({ request });
        },
        { detail: { hide: true } },
      )
  );
}
