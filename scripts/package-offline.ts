/**
 * @module scripts/package-offline
 * `bun run package:offline [--arch amd64|arm64]`: the air-gapped bundle, one tarball
 * dist/slipway-offline_<version>_<arch>.tar.gz holding a directory of the same name with the
 * .deb, the default builder image (`docker save` of builders.dockerd_image's default), SHA256SUMS
 * over every other file, and INSTALL (three commands on a host with no network).
 *
 * Options: --deb FILE (use this .deb instead of `bun scripts/package.ts`'s), --image REF (another
 * image than slipway/builder-dockerd:trixie), --out DIR (default dist), --docker-socket PATH.
 *
 * The image is never built here: assembling it takes root and a Debian mirror for minutes, which
 * a packaging step should not do behind the operator's back; a missing image fails with the
 * command that makes it. Gzip, not zstd: a host with no network may lack zstd, while tar and
 * gzip are on every Debian system (sizes and times measured in the README's air-gapped section).
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createWriteStream } from "node:fs";
import { basename, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import Docker from "dockerode";
import { DEFAULT_DOCKERD_IMAGE, SUMS_FILE_NAME, sha256File } from "../src/builders/image/index.ts";

const ROOT = join(import.meta.dir, "..");
const ARCHES = ["amd64", "arm64"] as const;
type Arch = (typeof ARCHES)[number];

function fail(message: string, code = 1): never {
  console.error(`package:offline: ${message}`);
  process.exit(code);
}

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    arch: { type: "string" },
    deb: { type: "string" },
    image: { type: "string" },
    out: { type: "string" },
    "docker-socket": { type: "string" },
  },
});
const hostArch: Arch = process.arch === "arm64" ? "arm64" : "amd64";
const arch = (values.arch ?? hostArch) as Arch;
if (!ARCHES.includes(arch)) fail(`--arch must be one of ${ARCHES.join(", ")}`, 2);
const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
const imageRef = values.image ?? DEFAULT_DOCKERD_IMAGE;
const outDir = resolve(values.out ?? join(ROOT, "dist"));
const name = `slipway-offline_${version}_${arch}`;
const docker = new Docker({
  socketPath: values["docker-socket"] ?? process.env.DOCKER_SOCKET ?? "/var/run/docker.sock",
});

/** The .deb: the one named, else the one `bun run package` writes (made now when missing). */
function findDeb(): string {
  if (values.deb) {
    if (!existsSync(values.deb)) fail(`no such file: ${values.deb}`);
    return resolve(values.deb);
  }
  const deb = join(ROOT, "dist", `slipway_${version}_${arch}.deb`);
  if (!existsSync(deb)) {
    const packager = join(ROOT, "scripts", "package.ts");
    if (!existsSync(packager)) fail(`${deb} is missing and this checkout cannot make it: pass --deb FILE`);
    const r = Bun.spawnSync([process.execPath, packager, "--arch", arch], {
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    });
    if (r.exitCode !== 0) fail(`bun scripts/package.ts --arch ${arch} failed (exit ${r.exitCode})`);
    if (!existsSync(deb)) fail(`bun scripts/package.ts --arch ${arch} did not write ${deb}`);
  }
  return deb;
}

/** `slipway/builder-dockerd:trixie` → `builder-dockerd-trixie.tar`: the file INSTALL names. */
export function imageFileName(ref: string): string {
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  return `${last.replace(/[^A-Za-z0-9._-]+/g, "-")}.tar`;
}

async function saveImage(to: string): Promise<void> {
  let info: { Architecture?: string };
  try {
    info = await docker.getImage(imageRef).inspect();
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404)
      fail(
        `the builder image ${imageRef} is not on this Docker engine: make it first with 'sudo slipway builder-image build' (about three minutes, from a Debian mirror), or pass --image REF`,
      );
    fail(`cannot reach Docker: ${(e as Error).message}`);
  }
  if (info.Architecture && info.Architecture !== arch)
    fail(
      `${imageRef} is ${info.Architecture}, not ${arch}: build the ${arch} image on an ${arch} host, or pass --image REF`,
    );
  await pipeline(await docker.getImage(imageRef).get(), createWriteStream(to));
}

function installText(deb: string, image: string): string {
  return `Slipway ${version} for ${arch}, for a host with no network

This host needs Docker and the package's dependencies (docker.io, iptables, ipset,
cryptsetup-bin) installed beforehand from the site's own Debian mirror or media:
apt resolves them from there and takes nothing else from the network.

  tar -xzf ${name}.tar.gz && cd ${name}
  sha256sum -c SHA256SUMS && sudo apt install ./${deb}
  sudo slipway builder-image import ${image}

The import checks ${image} against SHA256SUMS (beside it) before loading it into Docker,
and refuses a file that does not match. Then: sudo slipway doctor; the administrator's
first token is in /var/lib/slipway/initial-admin-token.
`;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const deb = findDeb();
  mkdirSync(outDir, { recursive: true });
  const stage = mkdtempSync(join(outDir, ".offline-"));
  try {
    const dir = join(stage, name);
    mkdirSync(dir);
    const debName = basename(deb);
    copyFileSync(deb, join(dir, debName));
    const image = imageFileName(imageRef);
    await saveImage(join(dir, image));
    const saved = performance.now();
    writeFileSync(join(dir, "INSTALL"), installText(debName, image));
    const files = [debName, image, "INSTALL"].sort();
    const lines = await Promise.all(files.map(async (f) => `${await sha256File(join(dir, f))}  ${f}\n`));
    writeFileSync(join(dir, SUMS_FILE_NAME), lines.join(""));
    const tarball = join(outDir, `${name}.tar.gz`);
    // Reproducible member order and ownership; gzip -n keeps the name and time out of the header.
    const tar = Bun.spawnSync(
      [
        "tar",
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--use-compress-program=gzip -n",
        "-cf",
        `${tarball}.part`,
        "-C",
        stage,
        name,
      ],
      { stdout: "inherit", stderr: "inherit" },
    );
    if (tar.exitCode !== 0) fail(`tar failed (exit ${tar.exitCode})`);
    renameSync(`${tarball}.part`, tarball);
    const mb = (p: string) => (statSync(p).size / 1e6).toFixed(1);
    console.log(
      `wrote ${tarball} (${mb(tarball)} MB; image ${imageRef} ${mb(join(dir, image))} MB saved in ${((saved - t0) / 1000).toFixed(1)} s, ${((performance.now() - t0) / 1000).toFixed(1)} s in all)`,
    );
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
