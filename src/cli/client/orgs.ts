/**
 * @module cli/client/orgs
 * `slipway orgs list|create|quotas|set-quotas`: the organizations the caller can see; creating
 * one and setting its quotas (administrator).
 */
import { seg } from "../../api-client/index.ts";
import { connect } from "./connection.ts";
import { dispatch, required, str } from "../subcommands.ts";
import { table, when } from "../output.ts";
import { UsageError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import {
  QUOTA_RANGES,
  type OrgView as Org,
  type QuotaKey,
  type QuotaReportView as QuotaReport,
} from "../../orgs/models.ts";

const QUOTA_KEYS = Object.keys(QUOTA_RANGES) as QuotaKey[];

/** `--max-projects` ↔ `max_projects`, and so on. */
const quotaFlag = (k: string) => k.replaceAll("_", "-");

/** The quota flags given: a whole number within the API's range, or `default` (→ null: the configured default). */
function quotaPatch(ctx: CommandContext): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const k of QUOTA_KEYS) {
    const v = str(ctx, quotaFlag(k));
    if (v === undefined) continue;
    const { min, max } = QUOTA_RANGES[k];
    if (v === "default") out[k] = null;
    else if (/^\d+$/.test(v) && Number(v) >= min && Number(v) <= max) out[k] = Number(v);
    else
      throw new UsageError(
        `--${quotaFlag(k)} ${JSON.stringify(v)}: expected a whole number from ${min} to ${max}, or default`,
      );
  }
  if (Object.keys(out).length === 0)
    throw new UsageError(
      `orgs set-quotas: name at least one quota (${QUOTA_KEYS.map((k) => `--${quotaFlag(k)}`).join(", ")})`,
    );
  return out;
}

function printQuotas(ctx: CommandContext, r: QuotaReport) {
  if (ctx.client.json) return printJson(ctx.io, r);
  const used: Partial<Record<string, number>> = {
    max_projects: r.usage.projects,
    max_running_builders: r.usage.running_builders,
  };
  table(
    ctx.io,
    ["QUOTA", "LIMIT", "DEFAULT", "USED"],
    QUOTA_KEYS.map((k) => [
      k,
      `${r.limits[k]}${r.overrides[k] !== undefined ? " (set)" : ""}`,
      r.defaults[k],
      used[k] ?? "-",
    ]),
    "no quotas",
  );
}

export const orgsCommand: Command = {
  name: "orgs",
  summary: "list organizations, or create one (administrator); show or set an organization's quotas",
  usage:
    "slipway orgs list\n       slipway orgs create --slug S --name N [--owner USER]\n       slipway orgs quotas --org O\n" +
    `       slipway orgs set-quotas --org O [${QUOTA_KEYS.map((k) => `--${quotaFlag(k)} N|default`).join("] [")}]`,
  options: {
    slug: { type: "string" },
    name: { type: "string" },
    owner: { type: "string" },
    org: { type: "string" },
    ...Object.fromEntries(QUOTA_KEYS.map((k) => [quotaFlag(k), { type: "string" as const }])),
  },
  optionHelp: {
    org: "quotas, set-quotas: the organization (id or slug)",
    ...Object.fromEntries(
      QUOTA_KEYS.map((k) => [
        quotaFlag(k),
        `set-quotas (administrator): ${QUOTA_RANGES[k].description}, ${QUOTA_RANGES[k].min}-${QUOTA_RANGES[k].max}; default: back to the configured default`,
      ]),
    ),
    slug: "create: short name in URLs (lowercase letters, digits, dashes; 2-39 characters)",
    name: "create: display name",
    owner: "create: username of the first owner (default: you)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "orgs",
      {
        list: {
          options: [],
          async run() {
            const orgs = await connect(ctx).get<Org[]>("/api/v1/orgs");
            if (ctx.client.json) printJson(ctx.io, orgs);
            else
              table(
                ctx.io,
                ["SLUG", "NAME", "ID", "CREATED"],
                orgs.map((o) => [o.slug, o.name, o.id, when(o.created_at)]),
                "no organizations",
              );
            return EXIT_OK;
          },
        },
        create: {
          options: ["slug", "name", "owner"],
          async run() {
            const body: Record<string, string> = {
              slug: required(ctx, "slug", "orgs create"),
              name: required(ctx, "name", "orgs create"),
            };
            const owner = str(ctx, "owner");
            if (owner !== undefined) body.owner = owner;
            const org = await connect(ctx).post<Org>("/api/v1/orgs", body);
            if (ctx.client.json) printJson(ctx.io, org);
            else ctx.io.out(`created organization ${org.slug} (${org.id})`);
            return EXIT_OK;
          },
        },
        quotas: {
          options: ["org"],
          async run() {
            printQuotas(
              ctx,
              await connect(ctx).get<QuotaReport>(`/api/v1/orgs/${seg(required(ctx, "org", "orgs quotas"))}/quotas`),
            );
            return EXIT_OK;
          },
        },
        "set-quotas": {
          options: ["org", ...QUOTA_KEYS.map(quotaFlag)],
          async run() {
            const org = required(ctx, "org", "orgs set-quotas");
            printQuotas(ctx, await connect(ctx).put<QuotaReport>(`/api/v1/orgs/${seg(org)}/quotas`, quotaPatch(ctx)));
            return EXIT_OK;
          },
        },
      },
      ctx,
    ),
};
