/**
 * @module cli/client/members
 * `slipway members list|add|remove|set-role --org O`: who belongs to an organization, and as
 * what (owner or user). An organization always keeps at least one owner; the server says so.
 */
import { seg } from "../../api-client/index.ts";
import { connect } from "./connection.ts";
import { dispatch, required, str } from "../subcommands.ts";
import { table, when } from "../output.ts";
import type { CommandContext } from "../command.ts";
import { UsageError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command } from "../command.ts";
import type { MemberView as Member } from "../../orgs/models.ts";

function role(ctx: CommandContext, fallback?: "user"): "owner" | "user" {
  const r = str(ctx, "role") ?? fallback;
  if (r === undefined) throw new UsageError("members set-role needs --role owner|user");
  if (r !== "owner" && r !== "user") throw new UsageError(`--role ${JSON.stringify(r)}: expected owner or user`);
  return r;
}

export const membersCommand: Command = {
  name: "members",
  summary: "list an organization's members, add or remove one, change a role (owners)",
  usage: [
    "slipway members list --org O",
    "       slipway members add --org O --user U [--role owner|user]",
    "       slipway members set-role --org O --user U --role owner|user",
    "       slipway members remove --org O --user U",
  ].join("\n"),
  options: { org: { type: "string" }, user: { type: "string" }, role: { type: "string" } },
  optionHelp: {
    org: "the organization (slug or id)",
    user: "add/set-role/remove: the username (or user id)",
    role: "add (default user) / set-role: owner or user",
  },
  positionals: true,
  run(ctx) {
    const base = () => `/api/v1/orgs/${seg(required(ctx, "org", "members"))}/members`;
    const user = (sub: string) => required(ctx, "user", `members ${sub}`);
    const show = (m: Member, verb: string) => {
      if (ctx.client.json) printJson(ctx.io, m);
      else ctx.io.out(verb);
    };
    return dispatch(
      "members",
      {
        list: {
          options: ["org"],
          async run() {
            const members = await connect(ctx).get<Member[]>(base());
            if (ctx.client.json) printJson(ctx.io, members);
            else
              table(
                ctx.io,
                ["USER", "ROLE", "USER ID", "SINCE"],
                members.map((m) => [m.username, m.role, m.user_id, when(m.created_at)]),
                "no members",
              );
            return EXIT_OK;
          },
        },
        add: {
          options: ["org", "user", "role"],
          async run() {
            const path = base();
            const m = await connect(ctx).post<Member>(path, { user: user("add"), role: role(ctx, "user") });
            show(m, `added ${m.username} to ${ctx.values.org} as ${m.role}`);
            return EXIT_OK;
          },
        },
        "set-role": {
          options: ["org", "user", "role"],
          async run() {
            const path = `${base()}/${seg(user("set-role"))}`;
            const m = await connect(ctx).patch<Member>(path, { role: role(ctx) });
            show(m, `${m.username} is now ${m.role === "owner" ? "an owner" : "a user"} of ${ctx.values.org}`);
            return EXIT_OK;
          },
        },
        remove: {
          options: ["org", "user"],
          async run() {
            const u = user("remove");
            await connect(ctx).delete(`${base()}/${seg(u)}`);
            if (ctx.client.json) printJson(ctx.io, { org: ctx.values.org, user: u, removed: true });
            else ctx.io.out(`removed ${u} from ${ctx.values.org}`);
            return EXIT_OK;
          },
        },
      },
      ctx,
    );
  },
};
