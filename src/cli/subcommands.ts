/**
 * @module cli/subcommands
 * What commands with subcommands share, client-side and server-side alike: each subcommand with
 * its own allowed options and positionals, and option readers that turn bad input into usage
 * errors (exit 2), durations like `30d` included.
 */
import { UsageError } from "../errors.ts";
import type { CommandContext } from "./command.ts";

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
  if (sub === undefined)
    throw new UsageError(`${command} needs a subcommand: ${names}; run 'slipway ${command} --help'`);
  const spec = subs[sub];
  if (!spec) throw new UsageError(`${command}: unknown subcommand '${sub}'; expected one of ${names}`);
  for (const [k, v] of Object.entries(ctx.values)) {
    if (v === undefined || GLOBAL.has(k) || spec.options.includes(k)) continue;
    throw new UsageError(`${command} ${sub} does not take --${k}; run 'slipway ${command} --help'`);
  }
  const want = spec.args ?? [];
  if (args.length < want.length)
    throw new UsageError(
      `${command} ${sub} needs ${want.slice(args.length).join(" ")}; run 'slipway ${command} --help'`,
    );
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
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new UsageError(`--${name} ${JSON.stringify(v)}: expected a whole number from ${min} to ${max}`);
  return Number(v);
}

const UNITS: Record<string, number> = { m: 60_000, h: 3600_000, d: 86400_000, w: 7 * 86400_000 };

/** `90m`, `12h`, `30d`, `4w` → milliseconds; anything else is a usage error. */
export function parseDuration(text: string, flag = "--expires"): number {
  const m = /^([1-9]\d{0,6})([mhdw])$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  if (!m || !Number.isFinite(ms) || ms > 100 * 365 * 86400_000) {
    throw new UsageError(
      `${flag} ${JSON.stringify(text)}: expected a duration like 90m, 12h, 30d or 4w (minutes, hours, days, weeks)`,
    );
  }
  return ms;
}
