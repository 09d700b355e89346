/**
 * @module cli/sbom
 * What ships inside the binary, as a bill of materials: the production dependency closure of
 * package.json's "dependencies" as npm resolved them in node_modules (the bundle's inputs: the
 * server's imports, and Preact for the embedded UI), plus Bun, the runtime compiled in. Read at
 * build time by ./sbom.macro.ts, so `slipway version --json` and the .deb's CycloneDX file list
 * the same set. The npm package "bun" is the compiler's installer, not bundled code: it stands
 * for the runtime component instead.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";

export interface SbomComponent {
  name: string;
  version: string;
  /** An SPDX identifier or expression, from the package's own package.json. */
  license: string;
  purl: string;
}

/** The dependency that stands for the runtime (see the module comment). */
export const RUNTIME_PACKAGE = "bun";

interface PackageJson {
  name: string;
  version: string;
  license?: string | { type?: string };
  licenses?: { type?: string }[];
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/** `pkg:npm/name@version`, a scope's `@` percent-encoded as the purl specification asks. */
export function npmPurl(name: string, version: string): string {
  return `pkg:npm/${name.startsWith("@") ? `%40${name.slice(1)}` : name}@${version}`;
}

function licenseOf(p: PackageJson): string {
  if (typeof p.license === "string") return p.license;
  if (p.license?.type) return p.license.type;
  const old = (p.licenses ?? []).map((l) => l.type).filter(Boolean);
  return old.length > 0 ? old.join(" OR ") : "NOASSERTION";
}

/** Node's lookup: NAME in `from`'s node_modules, then each parent's, up to `root`. */
function resolvePackage(name: string, from: string, root: string): string | null {
  let dir = from;
  for (;;) {
    const candidate = join(dir, "node_modules", name, "package.json");
    if (existsSync(candidate)) return dirname(candidate);
    if (dir === root || dirname(dir) === dir) return null;
    dir = dirname(dir);
    // Leave nested node_modules folders: `a/node_modules/b` looks next in `a`'s parents.
    while (dir.endsWith(`${"/"}node_modules`) || dirname(dir).endsWith("/node_modules/@")) dir = dirname(dir);
  }
}

/** The closure of `root`'s "dependencies" in its node_modules, sorted by name and version. */
export function dependencyClosure(root: string): SbomComponent[] {
  const top = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as PackageJson;
  const seen = new Map<string, SbomComponent>();
  const queue: { name: string; from: string; required: boolean }[] = Object.keys(top.dependencies ?? {})
    .filter((n) => n !== RUNTIME_PACKAGE)
    .map((name) => ({ name, from: root, required: true }));
  while (queue.length > 0) {
    const { name, from, required } = queue.shift()!;
    const found = resolvePackage(name, from, root);
    if (!found) {
      if (required) throw new Error(`${name} (needed from ${from}) is not installed in node_modules`);
      continue;
    }
    const dir = realpathSync(found);
    if (seen.has(dir)) continue;
    const p = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as PackageJson;
    seen.set(dir, { name: p.name, version: p.version, license: licenseOf(p), purl: npmPurl(p.name, p.version) });
    for (const n of Object.keys(p.dependencies ?? {})) queue.push({ name: n, from: found, required: true });
    for (const n of Object.keys(p.optionalDependencies ?? {})) queue.push({ name: n, from: found, required: false });
    for (const n of Object.keys(p.peerDependencies ?? {}))
      if (!p.peerDependenciesMeta?.[n]?.optional) queue.push({ name: n, from: found, required: false });
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

/** Bun, the runtime the binary carries: the version compiling it, the licence of its npm package. */
export function runtimeComponent(root: string, bunVersion: string): SbomComponent {
  const p = JSON.parse(
    readFileSync(join(root, "node_modules", RUNTIME_PACKAGE, "package.json"), "utf8"),
  ) as PackageJson;
  return {
    name: RUNTIME_PACKAGE,
    version: bunVersion,
    license: licenseOf(p),
    purl: npmPurl(RUNTIME_PACKAGE, bunVersion),
  };
}

/** A CycloneDX 1.5 JSON document of the components, for the .deb and a site's own scanner. */
export function cycloneDx(
  product: { name: string; version: string },
  components: SbomComponent[],
  timestamp: string,
): Record<string, unknown> {
  const spdx = (l: string) => (/^[A-Za-z0-9.+-]+$/.test(l) ? { license: { id: l } } : { expression: l });
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    version: 1,
    metadata: {
      timestamp,
      component: {
        type: "application",
        "bom-ref": `${product.name}@${product.version}`,
        name: product.name,
        version: product.version,
      },
    },
    components: components.map((c) => ({
      type: c.name === RUNTIME_PACKAGE ? "platform" : "library",
      "bom-ref": c.purl,
      name: c.name,
      version: c.version,
      purl: c.purl,
      licenses: [spdx(c.license)],
    })),
  };
}
