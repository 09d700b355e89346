/**
 * `bun run package`: the Debian packages dist/slipway_<version>_amd64.deb and _arm64.deb, made
 * with dpkg-deb (Debian's own tool, on every Debian host: nothing fetched, no fpm) from the
 * binaries `bun scripts/build.ts` compiled. Man pages, completions and the SBOM come from the
 * same source the binary was built from (src/cli/help.ts, completion.ts, sbom.ts); the postrm is
 * generated from packaging/deb/postrm.in with the names the code uses for what it creates.
 *
 * Usage: bun scripts/package.ts [--arch amd64|arm64|all] [--out DIR] [--version V]
 *          [--amd64-binary FILE] [--arm64-binary FILE]
 * (--version and the binaries let a test package an older release's binaries.) A binary of dist/
 * that is missing is compiled first; `bun run package` always compiles both afresh.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  readdirSync,
} from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { COMMANDS } from "../src/cli/index.ts";
import { manPages } from "../src/cli/help.ts";
import { completionScript } from "../src/cli/completion.ts";
import { cycloneDx, dependencyClosure, runtimeComponent, type SbomComponent } from "../src/cli/sbom.ts";
import { controlField } from "../src/doctor/packages.ts";
import { BUILDER_LABELS } from "../src/builders/engine.ts";
import { policyNames } from "../src/builders/network-policy.ts";
import { namesFor } from "../src/agent/render.ts";
import { BEGIN as HOSTS_BEGIN, END as HOSTS_END } from "../src/agent/hosts-file.ts";
import { MAPPER_PREFIX } from "../src/volumes/luks.ts";
import { SYSTEM_DATA_DIR } from "../src/config/paths.ts";
import { APPLIANCE_ID_FILE } from "../src/appliance/state.ts";

const ROOT = join(import.meta.dir, "..");
const DEB = join(ROOT, "packaging", "deb");
const ARCHES = { amd64: "dist/slipway", arm64: "dist/slipway-linux-arm64" } as const;
type Arch = keyof typeof ARCHES;

/** Names the postrm removes, from the code that makes them (see packaging/deb/postrm.in). */
export function postrmValues(): Record<string, string> {
  // The builder policy's chains SLWB_<appliance>_{IN,FWD,NAT} and sets slwb<appliance>_…, with a
  // placeholder the postrm replaces by this appliance's id; the agent's SLIPWAY_EGRESS[_X],
  // SLIPWAY_NEWNET[_X] and its sets slw_… (the package's agent is the default instance).
  const builder = policyNames("zzzzzzzz");
  const agent = namesFor("");
  const values = {
    DOCKER_LABEL: BUILDER_LABELS.appliance,
    APPLIANCE_ID_FILE,
    BUILDER_CHAINS: [builder.input, builder.forward, builder.nat].join("|"),
    BUILDER_SETS: `${builder.setPrefix}_[a-z0-9_]+`,
    AGENT_CHAINS: `${agent.chain}(_[A-Z0-9]+)?|${agent.newNetworks}(_[A-Z0-9]+)?`,
    AGENT_SETS: `${agent.setPrefix}_[a-z0-9_]+`,
    HOSTS_BEGIN,
    HOSTS_END,
    MAPPER_PREFIX,
    DATA_DIR: SYSTEM_DATA_DIR,
    AGENT_DIR: "/var/lib/slipway-agent",
    CONFIG_DIR: "/etc/slipway",
  };
  for (const [k, v] of Object.entries(values))
    if (v.includes("'") || v.includes("\n")) throw new Error(`${k} cannot be put in single quotes: ${v}`);
  return values;
}

function fill(template: string, values: Record<string, string>): string {
  const out = template.replace(/@([A-Z_]+)@/g, (m, k: string) => {
    if (!(k in values)) throw new Error(`no value for ${m}`);
    return values[k]!;
  });
  return out;
}

function sh(argv: string[], input?: string): string {
  const r = Bun.spawnSync(argv, {
    stdin: input === undefined ? "ignore" : Buffer.from(input),
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function gzip9n(text: string | Buffer): Buffer {
  const r = Bun.spawnSync(["gzip", "-9n", "-c"], { stdin: Buffer.from(text), stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`gzip failed: ${r.stderr.toString()}`);
  return r.stdout;
}

function put(root: string, path: string, content: string | Buffer, mode = 0o644): void {
  const p = join(root, path);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

/** DEP-5 copyright: Slipway itself, and the binary with every licence of what it carries. */
export function copyrightFile(components: SbomComponent[]): string {
  // Each SPDX id once, compound expressions like "(Apache-2.0 AND BSD-3-Clause)" split.
  const licences = [...new Set(components.flatMap((c) => c.license.replace(/[()]/g, "").split(/ AND | OR /)))].sort();
  // Licences whose full text Debian ships in /usr/share/common-licenses (base-files).
  const common = new Set(["Apache-2.0", "MPL-2.0"]);
  const para = (l: string) =>
    [
      `License: ${l}`,
      common.has(l)
        ? ` On Debian systems the full text is in /usr/share/common-licenses/${l}.`
        : ` The licence named by SPDX as ${l}; the packages under it are listed in`,
      ...(common.has(l) ? [] : [" /usr/share/doc/slipway/sbom.cdx.json, each with its own notice in its source."]),
    ].join("\n");
  return `${[
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: slipway",
    "Comment: usr/bin/slipway is compiled with Bun and carries the npm packages listed, with",
    " versions and licences, in /usr/share/doc/slipway/sbom.cdx.json (CycloneDX 1.5).",
    "",
    "Files: *",
    "Copyright: 2025-2026 The Slipway authors",
    "License: Slipway",
    "",
    "Files: usr/bin/slipway",
    "Copyright: 2025-2026 The Slipway authors",
    "           the authors of the bundled packages (see sbom.cdx.json)",
    `License: Slipway and ${licences.join(" and ")}`,
    "",
    "License: Slipway",
    " All rights reserved by the Slipway authors; distributed to the sites they license it to.",
    ...licences.flatMap((l) => ["", para(l)]),
  ].join("\n")}\n`;
}

function installedSizeKiB(root: string): number {
  let bytes = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (dir === root && e.name === "DEBIAN") continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else bytes += Math.ceil(statSync(p).size / 1024) * 1024;
    }
  };
  walk(root);
  return Math.ceil(bytes / 1024);
}

function md5sums(root: string): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (dir === root && e.name === "DEBIAN") continue;
      if (e.isDirectory()) walk(p);
      else lines.push(`${new Bun.CryptoHasher("md5").update(readFileSync(p)).digest("hex")}  ${relative(root, p)}`);
    }
  };
  walk(root);
  return `${lines.join("\n")}\n`;
}

/**
 * The binary is linked against glibc (libc, libpthread, libdl, libm, all in libc6): it needs the
 * newest GLIBC_2.x symbol version it names. Read from the file's bytes, so neither binutils nor
 * dpkg-shlibdeps (a source package) is needed; a version string that is not a symbol need can
 * only make the bound stricter.
 */
export function libcDependency(binary: string): string {
  const text = readFileSync(binary).toString("latin1");
  const versions = [...text.matchAll(/GLIBC_2\.(\d+)(?:\.(\d+))?/g)].map((m) => [2, Number(m[1]), Number(m[2] ?? 0)]);
  if (versions.length === 0) throw new Error(`${binary} names no GLIBC version: is it a Bun binary for Linux?`);
  versions.sort((a, b) => a[1]! - b[1]! || a[2]! - b[2]!);
  const [major, minor, patch] = versions.at(-1)!;
  return `libc6 (>= ${major}.${minor}${patch ? `.${patch}` : ""})`;
}

export interface PackageOptions {
  arch: Arch;
  binary: string;
  version: string;
  out: string;
  /** SOURCE_DATE_EPOCH, for reproducible man page dates and SBOM timestamp. */
  epoch: number;
}

/** Stages and builds one .deb; returns its path. */
export function buildDeb(o: PackageOptions): string {
  const stage = join(o.out, `deb-${o.arch}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  chmodSync(stage, 0o755);
  const components = [runtimeComponent(ROOT, Bun.version), ...dependencyClosure(ROOT)];
  const doc = "usr/share/doc/slipway";

  mkdirSync(join(stage, "usr/bin"), { recursive: true });
  copyFileSync(o.binary, join(stage, "usr/bin/slipway"));
  chmodSync(join(stage, "usr/bin/slipway"), 0o755);
  for (const unit of ["slipway.service", "slipway-agent.service"])
    put(stage, `usr/lib/systemd/system/${unit}`, readFileSync(join(ROOT, "packaging/systemd", unit)));
  put(stage, "etc/slipway/slipway.toml", readFileSync(join(ROOT, "packaging/slipway.toml")));
  for (const page of manPages(COMMANDS, o.epoch)) put(stage, `usr/share/man/man1/${page.name}.1.gz`, gzip9n(page.roff));
  put(stage, "usr/share/bash-completion/completions/slipway", completionScript("bash", COMMANDS));
  put(stage, "usr/share/zsh/vendor-completions/_slipway", completionScript("zsh", COMMANDS));
  put(stage, "usr/share/fish/vendor_completions.d/slipway.fish", completionScript("fish", COMMANDS));
  const timestamp = new Date(o.epoch * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  put(
    stage,
    `${doc}/sbom.cdx.json`,
    `${JSON.stringify(cycloneDx({ name: "slipway", version: o.version }, components, timestamp), null, 2)}\n`,
  );
  put(stage, `${doc}/copyright`, copyrightFile(components));
  // A version without a Debian revision makes a native package: its changelog is changelog.gz.
  put(stage, `${doc}/changelog.gz`, gzip9n(readFileSync(join(DEB, "changelog"))));
  put(stage, "usr/share/lintian/overrides/slipway", readFileSync(join(DEB, "lintian-overrides")));

  put(stage, "DEBIAN/conffiles", "/etc/slipway/slipway.toml\n");
  put(stage, "DEBIAN/postinst", readFileSync(join(DEB, "postinst")), 0o755);
  put(stage, "DEBIAN/prerm", readFileSync(join(DEB, "prerm")), 0o755);
  put(stage, "DEBIAN/postrm", fill(readFileSync(join(DEB, "postrm.in"), "utf8"), postrmValues()), 0o755);
  put(stage, "DEBIAN/md5sums", md5sums(stage));
  put(
    stage,
    "DEBIAN/control",
    fill(readFileSync(join(DEB, "control.in"), "utf8"), {
      VERSION: o.version,
      ARCH: o.arch,
      INSTALLED_SIZE: String(installedSizeKiB(stage)),
      DEPENDS: `${libcDependency(o.binary)}, ${controlField("depends")}`,
      RECOMMENDS: controlField("recommends"),
      SUGGESTS: controlField("suggests"),
    }),
  );
  // Every directory 0755 whatever the umask (lintian: non-standard-dir-perm).
  const dirs = (dir: string) => {
    chmodSync(dir, 0o755);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) dirs(join(dir, e.name));
  };
  dirs(stage);
  const deb = join(o.out, `slipway_${o.version}_${o.arch}.deb`);
  // --root-owner-group: every file root:root without fakeroot. gzip, not dpkg-deb's default xz:
  // xz takes about four minutes per package for the 120 MB binary on two cores, gzip seconds,
  // for a package about a tenth larger.
  sh(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", stage, deb]);
  rmSync(stage, { recursive: true, force: true });
  return deb;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      arch: { type: "string", default: "all" },
      out: { type: "string", default: join(ROOT, "dist") },
      version: { type: "string" },
      "amd64-binary": { type: "string" },
      "arm64-binary": { type: "string" },
    },
  });
  const arches = (values.arch === "all" ? ["amd64", "arm64"] : [values.arch]) as Arch[];
  if (arches.some((a) => !(a in ARCHES))) {
    console.error(`unknown --arch ${values.arch}; use amd64, arm64 or all`);
    process.exit(2);
  }
  const version =
    values.version ?? (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? Math.floor(Date.now() / 1000));
  for (const arch of arches) {
    const given = values[`${arch}-binary`] as string | undefined;
    const binary = given ?? join(ROOT, ARCHES[arch]);
    if (!existsSync(binary)) {
      if (given) {
        console.error(`${binary} is missing`);
        process.exit(1);
      }
      // Not built yet (a fresh checkout, or package:offline asking for one arch): compile it.
      const target = arch === "amd64" ? "x64" : "arm64";
      const r = Bun.spawnSync([process.execPath, join(ROOT, "scripts", "build.ts"), "--target", target], {
        cwd: ROOT,
        stdout: "inherit",
        stderr: "inherit",
      });
      if (r.exitCode !== 0) process.exit(r.exitCode ?? 1);
    }
    const started = performance.now();
    const deb = buildDeb({ arch, binary, version, out: values.out!, epoch });
    console.log(`built ${relative(process.cwd(), deb)} in ${Math.round(performance.now() - started)} ms`);
  }
}
