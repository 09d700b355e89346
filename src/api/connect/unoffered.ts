/**
 * @module api/connect/unoffered
 * What Slipway answers for a depot RPC it does not serve: Connect's `unimplemented`, naming the
 * call and what to use instead. A bare 404 would reach the user as "unimplemented: 404 Not
 * Found", which says neither why nor what next. Paths outside `/depot.` are not handled here.
 */
import { requestInfo } from "../context.ts";
import { Code, connectContentKind, endStreamFrame, unaryError } from "./protocol.ts";

/** Advice by method (`package.Service/Method`), most specific first. */
const ADVICE: [RegExp, string][] = [
  [
    /^depot\.core\.v1\.ProjectService\/ResetProject$/,
    "empty a project's cache with `depot cache reset` or POST /api/v1/projects/{id}/cache/reset",
  ],
  [
    /^depot\.core\.v1\.ProjectService\/\w*TrustPolic/,
    "manage CI trust relationships with `slipway trust` or /api/v1/projects/{id}/trust",
  ],
  [
    /^depot\.core\.v1\.ProjectService\/\w*Token/,
    "make project tokens with `slipway tokens create --project P` or POST /api/v1/tokens",
  ],
  [
    /^depot\.cli\.v1\.PushService\//,
    "pushing a saved build is not offered: push while building with `depot build --push`",
  ],
  [/^depot\.build\.v1\.RegistryService\//, "Depot's registry API (`depot image list|rm`) is not part of Slipway"],
  [
    /^depot\.cache\.v1\./,
    "Depot Cache (`depot gocache` and the like) is not part of Slipway; BuildKit's cache lives on each project's builder (`depot cache reset` empties it)",
  ],
  [
    /^depot\.ci\.v\d/,
    "Depot CI (`depot ci`) is not part of Slipway: run jobs on your own CI and build there with `depot build`",
  ],
  [/^depot\.agent\.v\d/, "Depot's agent sandboxes (`depot claude`, `depot sandbox`) are not part of Slipway"],
  [/^depot\.testresults\./, "test results and test splitting (`depot tests`) are not part of Slipway"],
];
const SERVED =
  "Slipway serves the depot CLI's build, project, organization and login calls (`depot build|bake|list|projects|cache reset|init|login|org`)";

/** The refusal's text for a method path such as `/depot.ci.v1.CIService/Run`. */
export function unofferedMessage(path: string): string {
  const method = path.replace(/^\//, "").slice(0, 200);
  const advice = ADVICE.find(([re]) => re.test(method))?.[1] ?? SERVED;
  return `Slipway does not offer ${method}: ${advice}`;
}

/** `unimplemented`, framed as the call expects: an end-of-stream frame (HTTP 200) for a stream,
 * an error body (HTTP 501) for a unary call. */
export function unofferedResponse(request: Request): Response {
  const message = unofferedMessage(new URL(request.url).pathname);
  const contentType = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (connectContentKind(contentType) === "stream")
    return new Response(endStreamFrame({ code: "unimplemented", message }), {
      status: 200,
      headers: { "content-type": contentType },
    });
  return unaryError(Code.Unimplemented, message, requestInfo(request).id);
}
