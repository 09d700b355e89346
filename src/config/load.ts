/**
 * @module config/load
 * Builds the effective configuration: embedded defaults ← TOML file ← SLIPWAY_* environment ←
 * command-line flags. Every failure is a ConfigError whose one-line message names the key, the
 * value, where it came from and what is allowed.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { baseType, configSchema, knownKeys, type Config } from "./schema.ts";
import { defaultConfigFile, defaultDataDir, isSystemMode, type PathEnv } from "./paths.ts";

/** Environment names the client side uses; they are not server config keys. */
const CLIENT_ENV = new Set(["SLIPWAY_SERVER", "SLIPWAY_TOKEN", "SLIPWAY_CACERT", "SLIPWAY_CONFIG"]);

export interface Override {
  /** `section.key` */
  key: string;
  value: string | number | boolean;
  /** e.g. `--listen` or `SLIPWAY_SERVER_LISTEN`, for error messages. */
  source: string;
}

export interface LoadConfigInput extends PathEnv {
  /** An explicit --config (or SLIPWAY_CONFIG): must exist. */
  configFile?: string;
  /** From flags, applied last, in order. */
  overrides?: Override[];
}

export interface LoadedConfig {
  config: Config;
  /** The file that was read, or null when none exists (all defaults). */
  configFile: string | null;
  /** Always set: from data.dir, --data-dir or the mode's default. */
  dataDir: string;
  systemMode: boolean;
}

export function loadConfig(input: LoadConfigInput): LoadedConfig {
  const keys = knownKeys();
  const raw: Record<string, Record<string, unknown>> = {};
  const sources = new Map<string, string>();

  const explicit = input.configFile ?? input.env.SLIPWAY_CONFIG;
  const file = explicit ?? defaultConfigFile(input);
  let configFile: string | null = null;
  if (explicit && !existsSync(explicit)) throw new ConfigError(`config file ${explicit} does not exist`);
  if (existsSync(file)) {
    configFile = file;
    readTomlInto(file, raw, sources, keys);
  }

  for (const o of envOverrides(input.env, keys)) applyOverride(o, raw, sources, keys);
  for (const o of input.overrides ?? []) applyOverride(o, raw, sources, keys);

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join(".");
    const [section, name] = issue.path as string[];
    const value = section && name ? raw[section]?.[name] : undefined;
    const from = sources.get(key);
    throw new ConfigError(
      `config: ${key}${value === undefined ? "" : ` = ${JSON.stringify(value)}`}${from ? ` (from ${from})` : ""} is invalid: ${issue.message}`,
    );
  }
  const config = result.data;
  // Absolute from here on: builders bind-mount files under it, and Docker takes only absolute paths.
  const dataDir = resolve(config.data.dir ?? defaultDataDir(input));
  return { config, configFile, dataDir, systemMode: isSystemMode(input) };
}

function readTomlInto(
  file: string,
  raw: Record<string, Record<string, unknown>>,
  sources: Map<string, string>,
  keys: ReturnType<typeof knownKeys>,
) {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`config file ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.split("\n")[0];
      throw new ConfigError(`config file ${file} is not valid TOML: line ${e.line}, column ${e.column}: ${first}`);
    }
    throw e;
  }
  for (const [section, table] of Object.entries(doc)) {
    const known = keys[section];
    if (!known) {
      throw new ConfigError(
        `config: unknown section [${section}] in ${file}; known sections: ${Object.keys(keys).join(", ")}`,
      );
    }
    if (!table || typeof table !== "object" || Array.isArray(table)) {
      throw new ConfigError(`config: ${section} in ${file} must be a table ([${section}])`);
    }
    for (const [key, value] of Object.entries(table)) {
      if (!(key in known)) {
        throw new ConfigError(
          `config: unknown key ${section}.${key} in ${file}; known keys in [${section}]: ${Object.keys(known).join(", ")}`,
        );
      }
      (raw[section] ??= {})[key] = value instanceof Date ? value.toISOString() : value;
      sources.set(`${section}.${key}`, file);
    }
  }
}

/** SLIPWAY_<SECTION>_<KEY> → overrides; a known section with an unknown key is an error (typos). */
function envOverrides(env: Record<string, string | undefined>, keys: ReturnType<typeof knownKeys>): Override[] {
  const out: Override[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("SLIPWAY_") || CLIENT_ENV.has(name) || value === undefined) continue;
    const rest = name.slice("SLIPWAY_".length).toLowerCase();
    const section = Object.keys(keys).find((s) => rest.startsWith(`${s}_`));
    if (!section) continue; // not a server setting (e.g. SLIPWAY_REQUIRE_INTEGRATION)
    const key = rest.slice(section.length + 1);
    if (!(key in keys[section]!)) {
      throw new ConfigError(
        `config: environment variable ${name} names no setting; known in [${section}]: ${Object.keys(keys[section]!)
          .map((k) => `SLIPWAY_${section.toUpperCase()}_${k.toUpperCase()}`)
          .join(", ")}`,
      );
    }
    out.push({ key: `${section}.${key}`, value, source: name });
  }
  return out;
}

function applyOverride(
  o: Override,
  raw: Record<string, Record<string, unknown>>,
  sources: Map<string, string>,
  keys: ReturnType<typeof knownKeys>,
) {
  const [section, key, ...extra] = o.key.split(".");
  const schema = section && key && extra.length === 0 ? keys[section]?.[key] : undefined;
  if (!schema) {
    const all = Object.entries(keys).flatMap(([s, ks]) => Object.keys(ks).map((k) => `${s}.${k}`));
    throw new ConfigError(`config: unknown key ${o.key} (from ${o.source}); known keys: ${all.join(", ")}`);
  }
  (raw[section!] ??= {})[key!] = typeof o.value === "string" ? coerce(o.value, baseType(schema), o) : o.value;
  sources.set(o.key, o.source);
}

/** Env and flag values arrive as text; turn them into the type the key wants. */
function coerce(text: string, type: string, o: Override): unknown {
  if (type === "boolean") {
    const v = text.trim().toLowerCase();
    if (["true", "1", "yes", "on"].includes(v)) return true;
    if (["false", "0", "no", "off"].includes(v)) return false;
    throw new ConfigError(
      `config: ${o.key} = ${JSON.stringify(text)} (from ${o.source}) is invalid: expected true or false`,
    );
  }
  if (type === "number") {
    if (!/^-?\d+(\.\d+)?$/.test(text.trim())) {
      throw new ConfigError(
        `config: ${o.key} = ${JSON.stringify(text)} (from ${o.source}) is invalid: expected a number`,
      );
    }
    return Number(text);
  }
  return text;
}
