/**
 * @module config
 * Server configuration (TOML + env + flags, zod-validated) and its default locations.
 */
export { loadConfig, type LoadedConfig, type LoadConfigInput, type Override } from "./load.ts";
export { configSchema, knownKeys, type Config } from "./schema.ts";
export { defaultConfigFile, defaultDataDir, isSystemMode } from "./paths.ts";
export { parseListenAddress, formatListenAddress, isLoopbackAddress, type ListenAddress } from "./listen.ts";
