/**
 * @module cli/sbom.macro
 * Runs at bundle time (a Bun macro, like web/embed.macro.ts): reads the dependency closure and
 * the compiling Bun's version from the source tree, so the list is embedded in the binary and
 * `slipway version --json` needs no node_modules at run time.
 */
import { join } from "node:path";
import { dependencyClosure, runtimeComponent, type SbomComponent } from "./sbom.ts";

export function embeddedComponents(): SbomComponent[] {
  const root = join(import.meta.dir, "..", "..");
  return [runtimeComponent(root, Bun.version), ...dependencyClosure(root)];
}
