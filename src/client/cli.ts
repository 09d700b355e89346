/**
 * @module client/cli
 * What the client-side commands share: subcommands with their own allowed options and
 * positionals, option readers that turn bad input into usage errors (exit 2), a connection to
 * the server from flags/env/saved login, aligned tables, and durations like `30d`.
 */
import type { CommandContext, Io } from "../cli/command.ts";
import { UsageError } from "../errors.ts";
import { ApiError, apiClientFactory, seg, type ApiClient } from "./api.ts";
import { resolveConnection } from "./config.ts";
import type { ProjectView } from "../projects/models.ts";

export type { ProjectView };

/** Options every command accepts (see GLOBAL_OPTIONS). */
const GLOBAL = new Set(["server", "token", "token-file", "cacert", "json", "help"]);

export interface Subcommand {
  /** Command-specific options this subcommand accepts (globals are always accepted). */
  options: string[];
  /** Names of the positionals after the subcommand, e.g. ["ID"]; all required. */
  args?: string[];
  run(ctx: CommandContext, args: string[]): Promise<number>;
}

/** Dispatches `slipway <command> <sub> [args]`, rejecting options the subcommand does not take. */
export function dispatch(command: string, subs: Record<string, Subcommand>, ctx: CommandContext): Promise<number> {
  const names = Object.keys(subs).join(", ");
  const [sub, ...args] = ctx.positionals;
  if (sub === undefined) throw new UsageError(`${command} needs a subcommand: ${names}; run 'slipway ${command} --help'`);
  const spec = subs[sub];
  if (!spec) throw new UsageError(`${command}: unknown subcommand '${sub}'; expected one of ${names}`);
  for (const [k, v] of Object.entries(ctx.values)) {
    if (v === undefined || GLOBAL.has(k) || spec.options.includes(k)) continue;
    throw new UsageError(`${command} ${sub} does not take --${k}; run 'slipway ${command} --help'`);
  }
  const want = spec.args ?? [];
  if (args.length < want.length) throw new UsageError(`${command} ${sub} needs ${want.slice(args.length).join(" ")}; run 'slipway ${command} --help'`);
  if (args.length > want.length) throw new UsageError(`${command} ${sub}: unexpected argument '${args[want.length]}'`);
  return spec.run(ctx, args);
}

export function str(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} needs a value`);
  return v;
}

export function required(ctx: CommandContext, name: string, what: string): string {
  const v = str(ctx, name);
  if (v === undefined) throw new UsageError(`${what} needs --${name}`);
  return v;
}

export function list(ctx: CommandContext, name: string): string[] {
  const v = ctx.values[name];
  if (v === undefined) return [];
  const items = (Array.isArray(v) ? v : [v]).map(String);
  if (items.some((i) => i === "")) throw new UsageError(`--${name} needs a value`);
  return items;
}

/** A whole number option, checked against the API's bounds before anything is sent. */
export function int(ctx: CommandContext, name: string, min: number, max: number): number | undefined {
  const v = str(ctx, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} ${JSON.stringify(v)}: expected a whole number from ${min} to ${max}`);
  return Number(v);
}

const UNITS: Record<string, number> = { m: 60_000, h: 3600_000, d: 86400_000, w: 7 * 86400_000 };

/** `90m`, `12h`, `30d`, `4w` → milliseconds; anything else is a usage error. */
export function parseDuration(text: string, flag = "--expires"): number {
  const m = /^([1-9]\d{0,6})([mhdw])$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  if (!m || !Number.isFinite(ms) || ms > 100 * 365 * 86400_000) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a duration like 90m, 12h, 30d or 4w (minutes, hours, days, weeks)`);
  }
  return ms;
}

/** An API client for the resolved server, token and CA; "not logged in" when there is none. */
export function connect(ctx: CommandContext): ApiClient {
  const c = resolveConnection(ctx.client, ctx.env);
  return apiClientFactory({ server: c.server, token: c.token, caPem: c.caPem });
}

/** A project named by id (`prj_…`) or as `ORG/NAME`; returns its id. */
export async function projectId(api: ApiClient, ref: string): Promise<string> {
  const slash = ref.indexOf("/");
  if (slash < 0) return ref;
  const [org, name] = [ref.slice(0, slash), ref.slice(slash + 1)];
  if (!org || !name || name.includes("/")) throw new UsageError(`project ${JSON.stringify(ref)}: expected a project id or ORG/NAME`);
  // A missing or foreign organization or project answers as the server does for a missing id.
  const missing = () => new ApiError(404, { title: "Not found", status: 404, detail: "no such project" });
  const projects = await api.get<ProjectView[]>(`/api/v1/orgs/${seg(org)}/projects`).catch((e: unknown) => {
    throw e instanceof ApiError && e.status === 404 ? missing() : e;
  });
  const p = projects.find((x) => x.name === name);
  if (!p) throw missing();
  return p.id;
}

/** Aligned columns with a header; `empty` is printed instead when there are no rows. */
export function table(io: Io, headers: string[], rows: (string | number | null | undefined)[][], empty: string): void {
  if (rows.length === 0) {
    io.out(empty);
    return;
  }
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === "" ? "-" : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  io.out(line(headers));
  for (const r of cells) io.out(line(r));
}

/** `key: value` lines, keys aligned. */
export function fields(io: Io, pairs: [string, string | number | boolean | null | undefined][]): void {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  for (const [k, v] of pairs) io.out(`${(k + ":").padEnd(width)} ${v === null || v === undefined || v === "" ? "-" : String(v)}`);
}

/** ISO timestamps without milliseconds, or "-". */
export const when = (iso: string | null | undefined) => (iso ? iso.replace(/\.\d{3}Z$/, "Z") : "-");
