/**
 * @module cli/client/tokens
 * `slipway tokens list|create|revoke`: API tokens. A user token acts as you; an organization
 * token automates one organization; a project token is enough to build one project (CI without
 * OIDC). The secret is shown once, at creation; the server keeps only its hash.
 */
import { seg } from "../../api-client/index.ts";
import { connect, projectId, type ProjectView } from "./connection.ts";
import { dispatch, parseDuration, required, str } from "../subcommands.ts";
import { table, when } from "../output.ts";
import { UsageError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command } from "../command.ts";
import type { TokenMetadataView as TokenMetadata } from "../../auth/models.ts";

function state(t: TokenMetadata): string {
  if (t.revoked_at) return "revoked";
  if (t.expires_at && Date.parse(t.expires_at) <= Date.now()) return "expired";
  return "active";
}

export const tokensCommand: Command = {
  name: "tokens",
  summary: "list, create or revoke API tokens (user, organization or project)",
  usage: [
    "slipway tokens list [--org O | --project P]",
    "       slipway tokens create [--project P | --org O] --name N [--expires DURATION]",
    "       slipway tokens revoke ID",
  ].join("\n"),
  options: {
    org: { type: "string" },
    project: { type: "string" },
    name: { type: "string" },
    expires: { type: "string" },
  },
  optionHelp: {
    org: "list: the organization's org and project tokens (owners); create: an organization token",
    project: "list: that project's tokens; create: a project token (id or ORG/NAME)",
    name: "create: what the token is for",
    expires: "create: lifetime such as 90m, 12h, 30d or 4w (default: never expires)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "tokens",
      {
        list: {
          options: ["org", "project"],
          async run() {
            const api = connect(ctx);
            const org = str(ctx, "org");
            const projectRef = str(ctx, "project");
            if (org && projectRef) throw new UsageError("tokens list takes --org or --project, not both");
            let tokens: TokenMetadata[];
            if (projectRef) {
              const p = await api.get<ProjectView>(`/api/v1/projects/${seg(await projectId(api, projectRef))}`);
              tokens = (await api.get<TokenMetadata[]>(`/api/v1/orgs/${seg(p.org_id)}/tokens`)).filter(
                (t) => t.project_id === p.id,
              );
            } else tokens = await api.get<TokenMetadata[]>(org ? `/api/v1/orgs/${seg(org)}/tokens` : "/api/v1/tokens");
            if (ctx.client.json) printJson(ctx.io, tokens);
            else
              table(
                ctx.io,
                ["ID", "KIND", "NAME", "PROJECT", "STATE", "EXPIRES", "LAST USED"],
                tokens.map((t) => [
                  t.id,
                  t.kind,
                  t.name,
                  t.project_id,
                  state(t),
                  when(t.expires_at),
                  when(t.last_used_at),
                ]),
                "no tokens",
              );
            return EXIT_OK;
          },
        },
        create: {
          options: ["org", "project", "name", "expires"],
          async run() {
            const name = required(ctx, "name", "tokens create");
            const org = str(ctx, "org");
            const projectRef = str(ctx, "project");
            if (org && projectRef)
              throw new UsageError(
                "tokens create takes --org (an organization token) or --project (a project token), not both",
              );
            const expires = str(ctx, "expires");
            const body: Record<string, string> = { kind: projectRef ? "project" : org ? "org" : "user", name };
            if (expires !== undefined) body.expires_at = new Date(Date.now() + parseDuration(expires)).toISOString();
            const api = connect(ctx);
            if (projectRef) body.project = await projectId(api, projectRef);
            if (org) body.org = org;
            const t = await api.post<TokenMetadata & { token: string }>("/api/v1/tokens", body);
            if (ctx.client.json) printJson(ctx.io, { id: t.id, token: t.token });
            else {
              // The secret alone on stdout (so `T=$(slipway tokens create ...)` works); the rest on stderr.
              ctx.io.out(t.token);
              ctx.io.err(
                `created ${t.kind} token ${t.id} '${t.name}'${t.expires_at ? `, expires ${when(t.expires_at)}` : ", never expires"}`,
              );
              ctx.io.err("this is the only time the token is shown: store it now (the server keeps only its hash)");
            }
            return EXIT_OK;
          },
        },
        revoke: {
          options: [],
          args: ["ID"],
          async run(_, [id]) {
            const t = await connect(ctx).delete<TokenMetadata>(`/api/v1/tokens/${seg(id!)}`);
            if (ctx.client.json) printJson(ctx.io, t);
            else ctx.io.out(`revoked ${t.kind} token ${t.id} '${t.name}'`);
            return EXIT_OK;
          },
        },
      },
      ctx,
    ),
};
