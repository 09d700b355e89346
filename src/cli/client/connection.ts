/**
 * @module cli/client/connection
 * What the client-side commands share to reach the appliance: an API client for the server,
 * token and CA resolved from flags, environment and the saved login, and a project named by id
 * or as ORG/NAME looked up through the API.
 */
import { ApiError, apiClientFactory, seg, type ApiClient } from "../../api-client/index.ts";
import type { CommandContext } from "../command.ts";
import { UsageError } from "../../errors.ts";
import { resolveConnection } from "./saved-login.ts";
import type { ProjectView } from "../../projects/models.ts";

/** An API client for the resolved server, token and CA; "not logged in" when there is none. */
export function connect(ctx: CommandContext): ApiClient {
  const c = resolveConnection(ctx.client, ctx.env);
  return apiClientFactory({ server: c.server, token: c.token, caPem: c.caPem });
}

export type { ProjectView };

/** A project named by id (`prj_…`) or as `ORG/NAME`; returns its id. */
export async function projectId(api: ApiClient, ref: string): Promise<string> {
  const slash = ref.indexOf("/");
  if (slash < 0) return ref;
  const [org, name] = [ref.slice(0, slash), ref.slice(slash + 1)];
  if (!org || !name || name.includes("/"))
    throw new UsageError(`project ${JSON.stringify(ref)}: expected a project id or ORG/NAME`);
  // A missing or foreign organization or project answers as the server does for a missing id.
  const missing = () => new ApiError(404, { title: "Not found", status: 404, detail: "no such project" });
  const projects = await api.get<ProjectView[]>(`/api/v1/orgs/${seg(org)}/projects`).catch((e: unknown) => {
    throw e instanceof ApiError && e.status === 404 ? missing() : e;
  });
  const p = projects.find((x) => x.name === name);
  if (!p) throw missing();
  return p.id;
}
