/**
 * @module cli/client/egress
 * `slipway egress show|set-mode|set-default|add|remove|apply-status|events|hosts|add-host|
 * remove-host --org O`: an organization's egress policy, its runner hosts (each with an agent
 * token, shown once) and what the agents applied and reported. `local-hosts|set-local|
 * unset-local` (the administrator): which runner hosts `serve` enforces on the appliance host.
 */
import { seg } from "../../api-client/index.ts";
import { connect } from "./connection.ts";
import { dispatch, list, required, str, type Subcommand } from "../subcommands.ts";
import { fields, table, when } from "../output.ts";
import { UsageError } from "../../errors.ts";
import type { EventView, HostView, PolicyView, RuleView } from "../../egress/models.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";

export const egressCommand: Command = {
  name: "egress",
  summary: "an organization's egress policy for CI runners, its runner hosts and would-be blocks",
  usage: [
    "slipway egress show --org O",
    "       slipway egress set-mode --org O off|monitor|enforce",
    "       slipway egress set-default --org O allow|deny",
    "       slipway egress add --org O allow|deny TARGET [--ports 443,8000-8100] [--comment C]",
    "       slipway egress remove --org O RULE-ID|TARGET",
    "       slipway egress apply-status --org O",
    "       slipway egress events --org O",
    "       slipway egress add-host --org O --name N --scope host|uid:N|docker:NET|docker:*|bridge:IF|subnet:CIDR ...",
    "       slipway egress remove-host --org O HOST-ID",
    "       slipway egress local-hosts                                  (administrator)",
    "       slipway egress set-local HOST-ID --scope S ...              (administrator)",
    "       slipway egress unset-local HOST-ID                          (administrator)",
    "       (TARGET: an address, a CIDR, a hostname, or *.domain — names strictly below domain, not the apex)",
  ].join("\n"),
  options: {
    org: { type: "string" },
    ports: { type: "string" },
    comment: { type: "string" },
    name: { type: "string" },
    scope: { type: "string", multiple: true },
  },
  optionHelp: {
    org: "the organization (slug or id)",
    ports: "add: ports or ranges the rule covers (TCP and UDP); default every port",
    comment: "add: why the rule exists",
    name: "add-host: the runner host's name",
    scope: "add-host, set-local: where the policy applies on that host (repeatable)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch("egress", { ...policySubcommands(ctx), ...hostSubcommands(ctx), ...localHostSubcommands(ctx) }, ctx),
};

const org = (ctx: CommandContext) => seg(required(ctx, "org", "egress"));

function one(args: string[], allowed: string[], what: string): string {
  if (!allowed.includes(args[0]!)) throw new UsageError(`${what} must be one of ${allowed.join(", ")}`);
  return args[0]!;
}

function showPolicy(ctx: CommandContext, p: PolicyView): void {
  if (ctx.client.json) {
    printJson(ctx.io, p);
    return;
  }
  fields(ctx.io, [
    ["mode", p.mode],
    ["default", p.default_action],
    ["revision", p.revision],
    ["updated", when(p.updated_at)],
  ]);
  ctx.io.out("");
  table(
    ctx.io,
    ["ID", "ACTION", "TARGET", "PORTS", "COMMENT"],
    p.rules.map((r) => [r.id, r.action, r.target, r.ports ?? "*", r.comment]),
    "no rules",
  );
}

/** The policy: show, mode, default, rules. */
function policySubcommands(ctx: CommandContext): Record<string, Subcommand> {
  return {
    show: {
      options: ["org"],
      async run() {
        showPolicy(ctx, await connect(ctx).get<PolicyView>(`/api/v1/orgs/${org(ctx)}/egress`));
        return EXIT_OK;
      },
    },
    "set-mode": {
      options: ["org"],
      args: ["MODE"],
      async run(_, args) {
        const mode = one(args, ["off", "monitor", "enforce"], "the mode");
        showPolicy(ctx, await connect(ctx).put<PolicyView>(`/api/v1/orgs/${org(ctx)}/egress/mode`, { mode }));
        return EXIT_OK;
      },
    },
    "set-default": {
      options: ["org"],
      args: ["ACTION"],
      async run(_, args) {
        const action = one(args, ["allow", "deny"], "the default");
        showPolicy(ctx, await connect(ctx).put<PolicyView>(`/api/v1/orgs/${org(ctx)}/egress/default`, { action }));
        return EXIT_OK;
      },
    },
    add: {
      options: ["org", "ports", "comment"],
      args: ["ACTION", "TARGET"],
      async run(_, args) {
        const action = one(args, ["allow", "deny"], "the action");
        const body: Record<string, string> = { action, target: args[1]! };
        const ports = str(ctx, "ports");
        const comment = str(ctx, "comment");
        if (ports) body.ports = ports;
        if (comment) body.comment = comment;
        const r = await connect(ctx).post<RuleView>(`/api/v1/orgs/${org(ctx)}/egress/rules`, body);
        if (ctx.client.json) printJson(ctx.io, r);
        else ctx.io.out(`added ${r.action} ${r.target}${r.ports ? ` ports ${r.ports}` : ""} (${r.id})`);
        return EXIT_OK;
      },
    },
    remove: {
      options: ["org"],
      args: ["RULE"],
      async run(_, args) {
        const removed = await connect(ctx).delete<RuleView[]>(`/api/v1/orgs/${org(ctx)}/egress/rules/${seg(args[0]!)}`);
        if (ctx.client.json) printJson(ctx.io, removed);
        else
          for (const r of removed ?? [])
            ctx.io.out(`removed ${r.action} ${r.target}${r.ports ? ` ports ${r.ports}` : ""} (${r.id})`);
        return EXIT_OK;
      },
    },
  };
}

/** An organization's runner hosts: what they applied, what they reported, registering and removing them. */
function hostSubcommands(ctx: CommandContext): Record<string, Subcommand> {
  return {
    "apply-status": {
      options: ["org"],
      async run() {
        const api = connect(ctx);
        const [hosts, policy] = await Promise.all([
          api.get<HostView[]>(`/api/v1/orgs/${org(ctx)}/egress/hosts`),
          api.get<PolicyView>(`/api/v1/orgs/${org(ctx)}/egress`),
        ]);
        if (ctx.client.json) printJson(ctx.io, hosts);
        else {
          ctx.io.out(`policy revision ${policy.revision}, mode ${policy.mode}`);
          table(
            ctx.io,
            ["HOST", "ID", "SCOPES", "LAST SEEN", "APPLIED", "AT", "DNS ONLY (53/udp,tcp)", "ERROR"],
            hosts.map((h) => [
              h.name,
              h.id,
              h.local_scopes ? `${h.scopes.join(",")} (local: ${h.local_scopes.join(",")})` : h.scopes.join(","),
              when(h.last_seen_at),
              h.applied_ok === null ? "never" : h.applied_ok ? "ok" : "FAILED",
              when(h.applied_at),
              h.dns_resolvers.join(",") || "-",
              h.applied_error ?? "",
            ]),
            "no runner hosts (slipway egress add-host)",
          );
          ctx.io.out("");
          ctx.io.out(
            "Each host's resolvers (its /etc/resolv.conf) are allowed for DNS only, 53/udp and 53/tcp; a rule for their addresses holds on every other port.",
          );
        }
        return EXIT_OK;
      },
    },
    events: {
      options: ["org"],
      async run() {
        const events = await connect(ctx).get<EventView[]>(`/api/v1/orgs/${org(ctx)}/egress/events`);
        if (ctx.client.json) printJson(ctx.io, events);
        else
          table(
            ctx.io,
            ["LAST", "ACTION", "HOST", "SCOPE", "SOURCE", "DESTINATION", "HOSTNAME", "COUNT"],
            events.map((e) => [
              when(e.last_at),
              e.action,
              e.host_id,
              e.scope,
              e.source,
              `${e.protocol}/${e.dst}:${e.port}`,
              e.hostname ?? "",
              e.count,
            ]),
            "nothing blocked",
          );
        return EXIT_OK;
      },
    },
    hosts: {
      options: ["org"],
      async run() {
        const hosts = await connect(ctx).get<HostView[]>(`/api/v1/orgs/${org(ctx)}/egress/hosts`);
        if (ctx.client.json) printJson(ctx.io, hosts);
        else
          table(
            ctx.io,
            ["NAME", "ID", "SCOPES", "LAST SEEN"],
            hosts.map((h) => [h.name, h.id, h.scopes.join(","), when(h.last_seen_at)]),
            "no runner hosts",
          );
        return EXIT_OK;
      },
    },
    "add-host": {
      options: ["org", "name", "scope"],
      async run() {
        const scopes = list(ctx, "scope");
        if (scopes.length === 0) throw new UsageError("egress add-host needs at least one --scope");
        const r = await connect(ctx).post<{ host: HostView; token: string }>(`/api/v1/orgs/${org(ctx)}/egress/hosts`, {
          name: required(ctx, "name", "egress add-host"),
          scopes,
        });
        if (ctx.client.json) printJson(ctx.io, { id: r.host.id, token: r.token });
        else {
          ctx.io.out(`registered runner host ${r.host.name} (${r.host.id}), scopes ${r.host.scopes.join(", ")}`);
          ctx.io.out(`agent token (shown once): ${r.token}`);
          ctx.io.out(`on that host: slipway agent --server <URL> --cacert ca.pem --token-file FILE`);
        }
        return EXIT_OK;
      },
    },
    "remove-host": {
      options: ["org"],
      args: ["HOST"],
      async run(_, args) {
        await connect(ctx).delete(`/api/v1/orgs/${org(ctx)}/egress/hosts/${seg(args[0]!)}`);
        if (ctx.client.json) printJson(ctx.io, { id: args[0], deleted: true });
        else ctx.io.out(`removed runner host ${args[0]} (its agent token no longer works)`);
        return EXIT_OK;
      },
    },
  };
}

/** The administrator's: which runner hosts `serve` enforces on the appliance host. */
function localHostSubcommands(ctx: CommandContext): Record<string, Subcommand> {
  return {
    "local-hosts": {
      options: [],
      async run() {
        const hosts = await connect(ctx).get<HostView[]>("/api/v1/egress/local-hosts");
        if (ctx.client.json) printJson(ctx.io, hosts);
        else
          table(
            ctx.io,
            ["HOST", "ID", "ORG", "LOCAL SCOPES"],
            hosts.map((h) => [h.name, h.id, h.org_id, (h.local_scopes ?? []).join(",")]),
            "no runner host is enforced on the appliance host",
          );
        return EXIT_OK;
      },
    },
    "set-local": {
      options: ["scope"],
      args: ["HOST"],
      async run(_, args) {
        const scopes = list(ctx, "scope");
        if (scopes.length === 0) throw new UsageError("egress set-local needs at least one --scope");
        const h = await connect(ctx).put<HostView>(`/api/v1/egress/local-hosts/${seg(args[0]!)}`, { scopes });
        if (ctx.client.json) printJson(ctx.io, h);
        else
          ctx.io.out(
            `serve enforces runner host ${h.name} (${h.id}) on this appliance host, scopes ${(h.local_scopes ?? []).join(", ")} (with egress.local_agent; picked up at the next start)`,
          );
        return EXIT_OK;
      },
    },
    "unset-local": {
      options: [],
      args: ["HOST"],
      async run(_, args) {
        await connect(ctx).delete(`/api/v1/egress/local-hosts/${seg(args[0]!)}`);
        if (ctx.client.json) printJson(ctx.io, { id: args[0], local: false });
        else ctx.io.out(`runner host ${args[0]} is no longer enforced on the appliance host`);
        return EXIT_OK;
      },
    },
  };
}
