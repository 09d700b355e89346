/**
 * @module cli/client/trust
 * `slipway trust list|add|remove`: which CI jobs may act for a project by presenting their OIDC
 * token — a GitHub repository, a CircleCI project, a Buildkite pipeline, or any issuer with
 * claims to match (exact values or globs with `*`).
 */
import { readFileSync } from "node:fs";
import { seg } from "../../api-client/index.ts";
import { connect, projectId } from "./connection.ts";
import { dispatch, list, required, str } from "../subcommands.ts";
import { table, when } from "../output.ts";
import { ConfigError, UsageError } from "../../errors.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import type { TrustView as Trust } from "../../auth/models.ts";

/** What a trust matches, in one line. */
function matches(t: Trust): string {
  const c = t.config;
  switch (t.provider) {
    case "github": {
      const pins = [
        ["id", c.repositoryId],
        ["owner id", c.repositoryOwnerId],
        ["ref", c.ref],
        ["environment", c.environment],
      ].filter(([, v]) => v !== undefined);
      return [`repository ${c.repository}`, ...pins.map(([k, v]) => `${k} ${v}`)].join(" ");
    }
    case "circleci":
      return `org ${c.organizationId} project ${c.projectUuid}`;
    case "buildkite":
      return `pipeline ${c.organizationSlug}/${c.pipelineSlug}`;
    default:
      return Object.entries((c.claims ?? {}) as Record<string, string>)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ");
  }
}

function pair(text: string, flag: string, shape: string): [string, string] {
  const i = text.indexOf("/");
  const [a, b] = [text.slice(0, i), text.slice(i + 1)];
  if (i <= 0 || !b || b.includes("/")) throw new UsageError(`--${flag} ${JSON.stringify(text)}: expected ${shape}`);
  return [a, b];
}

/** The API body for `trust add`, from exactly one provider's flags. */
function trustBody(ctx: CommandContext): Record<string, unknown> {
  const github = str(ctx, "github");
  const circleci = str(ctx, "circleci");
  const buildkite = str(ctx, "buildkite");
  const claims = list(ctx, "claim");
  const issuer = str(ctx, "issuer");
  const given = [github && "--github", circleci && "--circleci", buildkite && "--buildkite"].filter(Boolean);
  if (given.length > 1)
    throw new UsageError(
      `trust add takes one of --github, --circleci, --buildkite (or --issuer with --claim), not ${given.join(" and ")}`,
    );
  if (given.length === 1 && claims.length > 0)
    throw new UsageError(`--claim is for a generic issuer; it cannot be combined with ${given[0]}`);
  const pins = {
    repositoryId: str(ctx, "repository-id"),
    repositoryOwnerId: str(ctx, "owner-id"),
    ref: str(ctx, "ref"),
    environment: str(ctx, "environment"),
  };
  const pinFlags = Object.entries(pins).filter(([, v]) => v !== undefined);
  if (!github && pinFlags.length > 0)
    throw new UsageError(
      "--repository-id, --owner-id, --ref and --environment pin a --github trust; for other issuers use --claim",
    );

  let body: Record<string, unknown>;
  if (github) {
    const [owner] = pair(github, "github", "OWNER/REPO");
    body = { provider: "github", owner, repository: github, ...Object.fromEntries(pinFlags) };
  } else if (circleci) {
    const [organizationId, projectUuid] = pair(
      circleci,
      "circleci",
      "ORG_ID/PROJECT_ID (the organization's and the project's UUIDs)",
    );
    body = { provider: "circleci", organizationId, projectUuid };
  } else if (buildkite) {
    const [organizationSlug, pipelineSlug] = pair(buildkite, "buildkite", "ORG/PIPELINE (the slugs)");
    body = { provider: "buildkite", organizationSlug, pipelineSlug };
  } else {
    if (!issuer || claims.length === 0) {
      throw new UsageError(
        "trust add needs one of --github OWNER/REPO, --circleci ORG_ID/PROJECT_ID, --buildkite ORG/PIPELINE, or --issuer URL with --claim NAME=VALUE",
      );
    }
    const map: Record<string, string> = {};
    for (const c of claims) {
      const eq = c.indexOf("=");
      if (eq <= 0)
        throw new UsageError(`--claim ${JSON.stringify(c)}: expected NAME=VALUE (VALUE exact, or a glob with *)`);
      const name = c.slice(0, eq);
      if (name in map) throw new UsageError(`--claim ${name} is given twice`);
      map[name] = c.slice(eq + 1);
    }
    body = { provider: "generic", claims: map };
  }
  if (issuer) body.issuer = issuer;
  const audiences = list(ctx, "audience");
  if (audiences.length > 0) body.audiences = audiences;
  const jwksFile = str(ctx, "jwks-file");
  if (jwksFile) {
    let text: string;
    try {
      text = readFileSync(jwksFile, "utf8");
    } catch (e) {
      throw new ConfigError(
        `--jwks-file ${jwksFile}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    try {
      body.static_jwks = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`--jwks-file ${jwksFile}: not JSON (${(e as Error).message})`);
    }
  }
  return body;
}

export const trustCommand: Command = {
  name: "trust",
  summary: "list, add or remove the CI OIDC trust relationships of a project",
  usage: [
    "slipway trust list --project P",
    "       slipway trust add --project P (--github OWNER/REPO [--repository-id N] [--owner-id N] [--ref REF] [--environment E]",
    "                                      | --circleci ORG_ID/PROJECT_ID | --buildkite ORG/PIPELINE",
    "                                      | --issuer URL --claim NAME=VALUE ...) [--issuer URL] [--audience A ...] [--jwks-file F]",
    "       slipway trust remove ID",
  ].join("\n"),
  options: {
    project: { type: "string" },
    github: { type: "string" },
    circleci: { type: "string" },
    buildkite: { type: "string" },
    issuer: { type: "string" },
    claim: { type: "string", multiple: true },
    audience: { type: "string", multiple: true },
    "jwks-file": { type: "string" },
    "repository-id": { type: "string" },
    "owner-id": { type: "string" },
    ref: { type: "string" },
    environment: { type: "string" },
  },
  optionHelp: {
    project: "the project (id or ORG/NAME)",
    github: "add: trust GitHub Actions jobs of this repository",
    circleci: "add: trust CircleCI jobs of this project (organization and project UUIDs)",
    buildkite: "add: trust Buildkite jobs of this pipeline (organization and pipeline slugs)",
    issuer: "add: the token issuer (required with --claim; with --github for GitHub Enterprise Server)",
    claim: "add: a claim to match, NAME=VALUE; VALUE exact or a glob with * (repeatable)",
    audience: "add: accepted audience (repeatable; default: this server's public URL)",
    "jwks-file": "add: the issuer's keys (JWKS JSON) for issuers this server cannot reach",
    "repository-id":
      "add, --github: also require this repository_id (GitHub's immutable id: a re-created repository of the same name does not match)",
    "owner-id": "add, --github: also require this repository_owner_id (immutable, like --repository-id)",
    ref: "add, --github: also require this ref, e.g. refs/heads/main (exact, or a glob with *)",
    environment: "add, --github: also require this deployment environment",
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "trust",
      {
        list: {
          options: ["project"],
          async run() {
            const ref = required(ctx, "project", "trust list");
            const api = connect(ctx);
            const trusts = await api.get<Trust[]>(`/api/v1/projects/${seg(await projectId(api, ref))}/trust`);
            if (ctx.client.json) printJson(ctx.io, trusts);
            else
              table(
                ctx.io,
                ["ID", "PROVIDER", "MATCHES", "ISSUER", "AUDIENCES", "KEYS", "CREATED"],
                trusts.map((t) => [
                  t.id,
                  t.provider,
                  matches(t),
                  t.issuer,
                  t.audiences.join(","),
                  t.static_jwks ? "static" : "fetched",
                  when(t.created_at),
                ]),
                "no trust relationships",
              );
            return EXIT_OK;
          },
        },
        add: {
          options: [
            "project",
            "github",
            "circleci",
            "buildkite",
            "issuer",
            "claim",
            "audience",
            "jwks-file",
            "repository-id",
            "owner-id",
            "ref",
            "environment",
          ],
          async run() {
            const ref = required(ctx, "project", "trust add");
            const body = trustBody(ctx);
            const api = connect(ctx);
            const t = await api.post<Trust>(`/api/v1/projects/${seg(await projectId(api, ref))}/trust`, body);
            if (ctx.client.json) printJson(ctx.io, t);
            else
              ctx.io.out(
                `added trust ${t.id}: ${t.provider} ${matches(t)} (issuer ${t.issuer}; audiences ${t.audiences.join(", ")})`,
              );
            return EXIT_OK;
          },
        },
        remove: {
          options: [],
          args: ["ID"],
          async run(_, [id]) {
            await connect(ctx).delete(`/api/v1/trust/${seg(id!)}`);
            if (ctx.client.json) printJson(ctx.io, { id, removed: true });
            else ctx.io.out(`removed trust ${id}`);
            return EXIT_OK;
          },
        },
      },
      ctx,
    ),
};
