/**
 * @module test/bench/admission
 * One build admission as the depot CLI does it (CreateBuild, GetBuildKitConnection until
 * active, FinishBuild), over a served appliance: shared by the builds bench and the wire bench's
 * before/after comparison so both time exactly the same calls.
 */

/** POST a JSON body with a bearer token; `get` is the served appliance's fetch. */
export type Post = (token: string, path: string, body: unknown) => Promise<Response>;

export function jsonPoster(get: (path: string, init: RequestInit) => Promise<Response>): Post {
  return (token, path, body) =>
    get(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
}

/** A bench project (names are unique in an organization) and a project token for it, made by the administrator. */
export async function benchProject(
  post: Post,
  admin: string,
  name = "bench",
): Promise<{ projectId: string; token: string }> {
  const proj = (await (await post(admin, "/api/v1/orgs/default/projects", { name })).json()) as {
    id: string;
  };
  const created = (await (await post(admin, "/api/v1/tokens", { kind: "project", name, project: proj.id })).json()) as {
    token: string;
  };
  return { projectId: proj.id, token: created.token };
}

/** Times one admission in ms (create → active); the build is finished after the clock stops. */
export function admitter(post: Post, token: string, projectId: string): () => Promise<number> {
  return async () => {
    const t = performance.now();
    const c = (await (await post(token, "/depot.cli.v1.BuildService/CreateBuild", { projectId })).json()) as {
      buildId: string;
      buildToken: string;
    };
    for (;;) {
      const r = (await (
        await post(c.buildToken, "/depot.cli.v1.BuildService/GetBuildKitConnection", {
          buildId: c.buildId,
          platform: "BUILDER_PLATFORM_AMD64",
        })
      ).json()) as { active?: unknown; pending?: { waitMs: number } };
      if (r.active) break;
      await Bun.sleep(r.pending?.waitMs ?? 100);
    }
    const ms = performance.now() - t;
    await post(c.buildToken, "/depot.cli.v1.BuildService/FinishBuild", { buildId: c.buildId, success: {} });
    return ms;
  };
}
