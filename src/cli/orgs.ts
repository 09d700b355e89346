/**
 * @module cli/orgs
 * `slipway orgs list|create`: the organizations the caller can see; creating one (administrator).
 */
import { connect, dispatch, required, str, table, when } from "../client/cli.ts";
import { EXIT_OK, printJson, type Command } from "./command.ts";

interface Org {
  id: string;
  slug: string;
  name: string;
  created_at: string;
}

export const orgsCommand: Command = {
  name: "orgs",
  summary: "list organizations, or create one (administrator)",
  usage: "slipway orgs list\n       slipway orgs create --slug S --name N [--owner USER]",
  options: { slug: { type: "string" }, name: { type: "string" }, owner: { type: "string" } },
  optionHelp: {
    slug: "create: short name in URLs (lowercase letters, digits, dashes; 2-39 characters)",
    name: "create: display name",
    owner: "create: username of the first owner (default: you)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch("orgs", {
      list: {
        options: [],
        async run() {
          const orgs = await connect(ctx).get<Org[]>("/api/v1/orgs");
          if (ctx.client.json) printJson(ctx.io, orgs);
          else table(ctx.io, ["SLUG", "NAME", "ID", "CREATED"], orgs.map((o) => [o.slug, o.name, o.id, when(o.created_at)]), "no organizations");
          return EXIT_OK;
        },
      },
      create: {
        options: ["slug", "name", "owner"],
        async run() {
          const body: Record<string, string> = { slug: required(ctx, "slug", "orgs create"), name: required(ctx, "name", "orgs create") };
          const owner = str(ctx, "owner");
          if (owner !== undefined) body.owner = owner;
          const org = await connect(ctx).post<Org>("/api/v1/orgs", body);
          if (ctx.client.json) printJson(ctx.io, org);
          else ctx.io.out(`created organization ${org.slug} (${org.id})`);
          return EXIT_OK;
        },
      },
    }, ctx),
};
