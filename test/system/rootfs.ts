/**
 * @module test/system/rootfs
 * The Debian system the package is installed into, and the package archive it installs from.
 *
 * - The image: bookworm minbase with systemd as init (plus dbus, apt, sudo, curl), assembled with
 *   debootstrap from the host's Debian mirror and `docker import`ed as SYSTEM_IMAGE, labelled
 *   with the recipe's hash. Like test/support/builder-image.ts: an image with the current hash is
 *   reused; else the cached rootfs tarball is re-imported; else debootstrap runs (~3-5 min).
 * - The archive: the dependency closure of the package's Depends (docker.io, iptables, ipset,
 *   cryptsetup-bin) that the rootfs lacks, downloaded on the host by apt with a throwaway APT
 *   state (the rootfs's own dpkg status decides what is missing) and indexed with
 *   dpkg-scanpackages. The container reads it as `deb [trusted=yes] file:/repo ./`, so
 *   `apt install ./slipway_….deb` resolves Depends from the Debian mirror's packages while the
 *   container itself never talks to the mirror. Cached beside the tarball, keyed by the same hash.
 */
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultMirror } from "../../src/builders/image/mirror.ts";
import { which } from "../../src/host/run.ts";
import { CACHE_DIR } from "../support/builder-image.ts";

export const SYSTEM_SUITE = "bookworm";
export const SYSTEM_IMAGE = `slipway/test-system:${SYSTEM_SUITE}`;
const RECIPE_LABEL = "io.slipway.test.recipe";
/** Packages on top of minbase: systemd as PID 1 and what the README's commands use. */
const INCLUDE = ["systemd", "systemd-sysv", "dbus", "apt", "ca-certificates", "sudo", "curl", "iproute2", "procps"];
/** The package's Depends, whose closure the local archive holds. */
export const PACKAGE_DEPENDS = ["docker.io", "iptables", "ipset", "cryptsetup-bin"];
/** Bump when the assembly below changes in a way the lists above do not show. */
const ASSEMBLY_REVISION = 1;

export const recipeHash = (): string =>
  createHash("sha256")
    .update(JSON.stringify({ suite: SYSTEM_SUITE, INCLUDE, PACKAGE_DEPENDS, ASSEMBLY_REVISION }))
    .digest("hex")
    .slice(0, 12);

const tarballPath = () => join(CACHE_DIR, `system-${SYSTEM_SUITE}-${recipeHash()}.tar`);
const statusPath = () => join(CACHE_DIR, `system-${SYSTEM_SUITE}-${recipeHash()}.dpkg-status`);
/** The local archive: .debs and their Packages index. */
export const repoDir = () => join(CACHE_DIR, `system-repo-${SYSTEM_SUITE}-${recipeHash()}`);

/** Why the system image and archive cannot be had here, or null (integrationSuite's `missing`). */
export function systemImageMissing(): string | null {
  if (!which("docker")) return "the docker CLI is not installed";
  if (!existsSync("/var/run/docker.sock")) return "no dockerd at /var/run/docker.sock";
  if (!which("dpkg-deb")) return "dpkg-deb is not installed";
  if (!which("dpkg-scanpackages")) return "dpkg-scanpackages is not installed (package dpkg-dev)";
  if (existsSync(tarballPath()) && existsSync(join(repoDir(), "Packages"))) return null;
  if (process.getuid?.() !== 0) return "assembling the system image needs root (debootstrap)";
  if (!which("debootstrap")) return "debootstrap is not installed";
  return null;
}

function sh(argv: string[], opts: { cwd?: string; stdin?: Blob } = {}): string {
  const r = Bun.spawnSync(argv, { cwd: opts.cwd, stdin: opts.stdin, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0)
    throw new Error(`${argv.join(" ")} exited ${r.exitCode}:\n${r.stderr.toString()}${r.stdout.toString()}`);
  return r.stdout.toString();
}

const imageRecipe = (): string | null => {
  const r = Bun.spawnSync(
    ["docker", "image", "inspect", "-f", `{{index .Config.Labels "${RECIPE_LABEL}"}}`, SYSTEM_IMAGE],
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  return r.exitCode === 0 ? r.stdout.toString().trim() : null;
};

/** The packages of `names`' closure missing from the dpkg status file `status`, into `dest`. */
function downloadClosure(status: string, dest: string, mirror: string): void {
  const work = mkdtempSync(join(tmpdir(), "slipway-sysapt-"));
  try {
    for (const d of ["lists/partial", "cache/archives/partial", "sources", "etc"])
      mkdirSync(join(work, d), { recursive: true });
    writeFileSync(
      join(work, "sources", "system.sources"),
      `Types: deb\nURIs: ${mirror}\nSuites: ${SYSTEM_SUITE} ${SYSTEM_SUITE}-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
    );
    const opts = [
      "-o",
      "Dir::Etc::SourceList=/dev/null",
      "-o",
      `Dir::Etc::SourceParts=${join(work, "sources")}`,
      "-o",
      `Dir::Etc::Preferences=/dev/null`,
      "-o",
      `Dir::Etc::PreferencesParts=${join(work, "etc")}`,
      "-o",
      `Dir::State::Lists=${join(work, "lists")}`,
      "-o",
      `Dir::State::status=${status}`,
      "-o",
      `Dir::State::extended_states=${join(work, "extended_states")}`,
      "-o",
      `Dir::Cache=${join(work, "cache")}`,
      "-o",
      "APT::Sandbox::User=root",
      "-o",
      "Debug::NoLocking=1",
    ];
    sh(["apt-get", ...opts, "update", "-qq"]);
    sh(["apt-get", ...opts, "install", "-y", "-qq", "--download-only", "--no-install-recommends", ...PACKAGE_DEPENDS]);
    const archives = join(work, "cache", "archives");
    mkdirSync(dest, { recursive: true });
    for (const f of readdirSync(archives)) if (f.endsWith(".deb")) copyFileSync(join(archives, f), join(dest, f));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function indexRepo(dir: string): void {
  writeFileSync(join(dir, "Packages"), sh(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], { cwd: dir }));
}

export interface EnsuredSystem {
  image: string;
  repo: string;
  source: "image" | "tarball" | "debootstrap";
  seconds: number;
}

/** The system image and the local archive (see the module comment). */
export function ensureSystemImage(log: (line: string) => void = () => {}): EnsuredSystem {
  const t0 = performance.now();
  const hash = recipeHash();
  mkdirSync(CACHE_DIR, { recursive: true });
  const done = (source: EnsuredSystem["source"]) => ({
    image: SYSTEM_IMAGE,
    repo: repoDir(),
    source,
    seconds: (performance.now() - t0) / 1000,
  });
  const haveRepo = existsSync(join(repoDir(), "Packages"));
  if (haveRepo && imageRecipe() === hash) return done("image");
  const importTar = () =>
    sh([
      "docker",
      "import",
      "--change",
      `LABEL ${RECIPE_LABEL}=${hash}`,
      "--change",
      "ENV container=docker",
      "--change",
      'CMD ["/sbin/init"]',
      tarballPath(),
      SYSTEM_IMAGE,
    ]);
  const mirror = defaultMirror();
  if (existsSync(tarballPath()) && existsSync(statusPath())) {
    if (!haveRepo) {
      downloadClosure(statusPath(), repoDir(), mirror);
      indexRepo(repoDir());
    }
    importTar();
    return done("tarball");
  }
  const work = mkdtempSync(join(tmpdir(), "slipway-sysroot-"));
  try {
    const root = join(work, "rootfs");
    log(`debootstrap ${SYSTEM_SUITE} from ${mirror}`);
    mkdirSync(join(CACHE_DIR, "debs", `system-${SYSTEM_SUITE}`), { recursive: true });
    sh([
      "debootstrap",
      "--variant=minbase",
      `--include=${INCLUDE.join(",")}`,
      `--cache-dir=${join(CACHE_DIR, "debs", `system-${SYSTEM_SUITE}`)}`,
      SYSTEM_SUITE,
      root,
      mirror,
    ]);
    // Nothing of the host's mirror stays configured: the test's containers use the local archive.
    writeFileSync(join(root, "etc/apt/sources.list"), "");
    rmSync(join(root, "var/lib/apt/lists"), { recursive: true, force: true });
    mkdirSync(join(root, "var/lib/apt/lists/partial"), { recursive: true });
    rmSync(join(root, "var/cache/apt/archives"), { recursive: true, force: true });
    mkdirSync(join(root, "var/cache/apt/archives/partial"), { recursive: true });
    // A container has no consoles or udev: units that wait for them only slow the boot.
    for (const unit of [
      "getty@tty1.service",
      "systemd-udevd.service",
      "systemd-remount-fs.service",
      "console-getty.service",
    ])
      Bun.spawnSync(["ln", "-sf", "/dev/null", join(root, "etc/systemd/system", unit)]);
    writeFileSync(join(root, "etc/hostname"), "slipway-system-test\n");
    copyFileSync(join(root, "var/lib/dpkg/status"), `${statusPath()}.tmp`);
    renameSync(`${statusPath()}.tmp`, statusPath());
    rmSync(repoDir(), { recursive: true, force: true });
    downloadClosure(statusPath(), repoDir(), mirror);
    indexRepo(repoDir());
    sh(["tar", "--numeric-owner", "-C", root, "-cf", `${tarballPath()}.tmp`, "."]);
    renameSync(`${tarballPath()}.tmp`, tarballPath());
    importTar();
    return done("debootstrap");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
