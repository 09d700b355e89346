/**
 * @module cli/client/projects
 * `slipway projects list|create|show|update|delete`: projects and their settings (cache size and
 * retention, builder CPUs, memory and idle timeout, build timeout). A project is named by its id
 * or as ORG/NAME.
 */
import { seg, type ApiClient } from "../../api-client/index.ts";
import { connect, projectId, type ProjectView } from "./connection.ts";
import { dispatch, int, required, str } from "../subcommands.ts";
import { fields, table, when } from "../output.ts";
import { UsageError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";

/** Flag → API field, with the API's bounds (checked here first for a clear usage error). */
const SETTINGS: [flag: string, field: keyof ProjectView, min: number, max: number, help: string][] = [
  ["cache-size-gb", "cache_size_gb", 1, 10000, "cache size per platform, GB (default 50)"],
  ["cache-keep-days", "cache_keep_days", 1, 3650, "keep cache entries this many days (default 14)"],
  ["builder-cpus", "builder_cpus", 1, 256, "CPUs per builder (default 2)"],
  ["builder-memory-mb", "builder_memory_mb", 256, 1048576, "memory per builder, MB (default 4096)"],
  [
    "builder-idle-timeout",
    "builder_idle_timeout_seconds",
    30,
    86400,
    "stop an idle builder after this many seconds (default 300)",
  ],
  ["build-timeout", "build_timeout_seconds", 60, 86400, "hard timeout of a build, seconds (default 7200)"],
];
const SETTING_FLAGS = SETTINGS.map(([flag]) => flag);

function settings(ctx: CommandContext): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [flag, field, min, max] of SETTINGS) {
    const v = int(ctx, flag, min, max);
    if (v !== undefined) out[field] = v;
  }
  return out;
}

/** org id → slug, for display; empty when the caller cannot list organizations. */
async function orgSlugs(api: ApiClient): Promise<Map<string, string>> {
  try {
    return new Map((await api.get<{ id: string; slug: string }[]>("/api/v1/orgs")).map((o) => [o.id, o.slug]));
  } catch {
    return new Map();
  }
}

function showProject(ctx: CommandContext, p: ProjectView, org?: string): void {
  if (ctx.client.json) {
    printJson(ctx.io, p);
    return;
  }
  fields(ctx.io, [
    ["id", p.id],
    ["name", p.name],
    ["organization", org ?? p.org_id],
    ["created", when(p.created_at)],
    ["cache size", `${p.cache_size_gb} GB`],
    ["cache keep", `${p.cache_keep_days} days`],
    ["builder cpus", p.builder_cpus],
    ["builder memory", `${p.builder_memory_mb} MB`],
    ["builder idle timeout", `${p.builder_idle_timeout_seconds} s`],
    ["build timeout", `${p.build_timeout_seconds} s`],
  ]);
}

export const projectsCommand: Command = {
  name: "projects",
  summary: "list, create, show, change or delete projects and their settings",
  usage: [
    "slipway projects list [--org O]",
    "       slipway projects create --org O --name N [settings]",
    "       slipway projects show P",
    "       slipway projects update P [--name N] [settings]",
    "       slipway projects delete P",
    "       (P: a project id, or ORG/NAME)",
  ].join("\n"),
  options: {
    org: { type: "string" },
    name: { type: "string" },
    ...Object.fromEntries(SETTINGS.map(([flag]) => [flag, { type: "string" as const }])),
  },
  optionHelp: {
    org: "list/create: the organization (slug or id)",
    name: "create/update: project name (letters, digits, . _ -)",
    ...Object.fromEntries(SETTINGS.map(([flag, , , , help]) => [flag, `create/update: ${help}`])),
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "projects",
      {
        list: {
          options: ["org"],
          async run() {
            const api = connect(ctx);
            const org = str(ctx, "org");
            const projects = await api.get<ProjectView[]>(
              org ? `/api/v1/orgs/${seg(org)}/projects` : "/api/v1/projects",
            );
            if (ctx.client.json) printJson(ctx.io, projects);
            else {
              const slugs = await orgSlugs(api);
              table(
                ctx.io,
                ["ORG", "NAME", "ID", "CACHE", "CPUS", "MEMORY", "CREATED"],
                projects.map((p) => [
                  slugs.get(p.org_id) ?? p.org_id,
                  p.name,
                  p.id,
                  `${p.cache_size_gb} GB`,
                  p.builder_cpus,
                  `${p.builder_memory_mb} MB`,
                  when(p.created_at),
                ]),
                "no projects",
              );
            }
            return EXIT_OK;
          },
        },
        create: {
          options: ["org", "name", ...SETTING_FLAGS],
          async run() {
            const org = required(ctx, "org", "projects create");
            const body = { name: required(ctx, "name", "projects create"), ...settings(ctx) };
            const p = await connect(ctx).post<ProjectView>(`/api/v1/orgs/${seg(org)}/projects`, body);
            if (ctx.client.json) printJson(ctx.io, p);
            else ctx.io.out(`created project ${org}/${p.name} (${p.id})`);
            return EXIT_OK;
          },
        },
        show: {
          options: [],
          args: ["P"],
          async run(_, [ref]) {
            const api = connect(ctx);
            const p = await api.get<ProjectView>(`/api/v1/projects/${seg(await projectId(api, ref!))}`);
            showProject(ctx, p, ctx.client.json ? undefined : (await orgSlugs(api)).get(p.org_id));
            return EXIT_OK;
          },
        },
        update: {
          options: ["name", ...SETTING_FLAGS],
          args: ["P"],
          async run(_, [ref]) {
            const body: Record<string, string | number> = settings(ctx);
            const name = str(ctx, "name");
            if (name !== undefined) body.name = name;
            if (Object.keys(body).length === 0)
              throw new UsageError(
                `projects update needs something to change: --name or one of ${SETTING_FLAGS.map((f) => `--${f}`).join(", ")}`,
              );
            const api = connect(ctx);
            const p = await api.patch<ProjectView>(`/api/v1/projects/${seg(await projectId(api, ref!))}`, body);
            if (ctx.client.json) printJson(ctx.io, p);
            else {
              ctx.io.out(`updated project ${p.name} (${p.id})`);
              showProject(ctx, p, (await orgSlugs(api)).get(p.org_id));
            }
            return EXIT_OK;
          },
        },
        delete: {
          options: [],
          args: ["P"],
          async run(_, [ref]) {
            const api = connect(ctx);
            const id = await projectId(api, ref!);
            await api.delete(`/api/v1/projects/${seg(id)}`);
            if (ctx.client.json) printJson(ctx.io, { id, deleted: true });
            else ctx.io.out(`deleted project ${ref}${ref !== id ? ` (${id})` : ""}`);
            return EXIT_OK;
          },
        },
      },
      ctx,
    ),
};
