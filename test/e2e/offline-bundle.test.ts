/**
 * @module test/e2e/offline-bundle
 * The air-gapped path with the real dockerd: `slipway builder-image import` loads a tarball only
 * when it matches its SHA256SUMS line (a flipped byte, a missing line or no sums file at all load
 * nothing), and `bun run package:offline` writes one tarball whose SHA256SUMS checks with
 * sha256sum and whose image the import then loads. A tiny busybox image keeps these fast; the
 * real builder image's bundle is installed by the system test.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { slipwayBinary } from "../support/binary.ts";
import { busyboxMissing, busyboxPath, docker, dockerdMissing } from "../support/builder-image.ts";
import { integrationSuite } from "../support/integration.ts";
import { runSlipway } from "../support/serve.ts";

const ROOT = join(import.meta.dir, "..", "..");
const work = mkdtempSync(join(tmpdir(), "slipway-offline-"));
const suffix = crypto.randomUUID().slice(0, 8);
/** Named for this test run: only these are removed afterwards. */
const tinyRef = `slipway-test-offline/tiny-${suffix}:v1`;
afterAll(() => rmSync(work, { recursive: true, force: true }));
const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;

const dockerMissing = await dockerdMissing();
const missing = dockerMissing ?? (Bun.which("dpkg-deb") ? null : "no dpkg-deb") ?? busyboxMissing();

function sh(argv: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

async function present(ref: string): Promise<boolean> {
  return docker()
    .getImage(ref)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

const removeTiny = () =>
  docker()
    .getImage(tinyRef)
    .remove({ force: true })
    .catch(() => {});

/** A directory holding `name` and, unless `sums` is null, a SHA256SUMS with `sums` as its text. */
function carried(dir: string, from: string, name: string, sums: string | null): string {
  mkdirSync(join(work, dir));
  const file = join(work, dir, name);
  copyFileSync(from, file);
  if (sums !== null) writeFileSync(join(work, dir, "SHA256SUMS"), sums);
  return file;
}

/** A stand-in .deb made with dpkg-deb: the bundle carries whatever .deb it is given. */
function standInDeb(): string {
  const deb = join(work, `slipway_${version}_amd64.deb`);
  if (existsSync(deb)) return deb;
  const pkg = join(work, "pkg");
  mkdirSync(join(pkg, "DEBIAN"), { recursive: true });
  writeFileSync(
    join(pkg, "DEBIAN", "control"),
    `Package: slipway\nVersion: ${version}\nArchitecture: amd64\nMaintainer: Test <test@example.invalid>\nDescription: stand-in\n`,
  );
  expect(sh(["dpkg-deb", "--root-owner-group", "--build", pkg, deb]).code).toBe(0);
  return deb;
}

const sha256 = (path: string) => new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");

integrationSuite("builder-image import checks SHA256SUMS; package:offline", missing, () => {
  let saved: string;

  beforeAll(async () => {
    const root = join(work, "root");
    mkdirSync(join(root, "bin"), { recursive: true });
    copyFileSync(busyboxPath(), join(root, "bin", "busybox"));
    const rootTar = join(work, "root.tar");
    expect(sh(["tar", "-C", root, "-cf", rootTar, "bin"]).code).toBe(0);
    const d = docker();
    const [repo, tag] = tinyRef.split(":");
    const stream = await d.importImage(rootTar, { repo, tag } as Record<string, unknown>);
    await new Promise((r, j) => d.modem.followProgress(stream, (e: Error | null) => (e ? j(e) : r(null))));
    saved = join(work, "tiny.tar");
    await pipeline(await d.getImage(tinyRef).get(), createWriteStream(saved));
    await removeTiny();
    slipwayBinary();
  }, 120_000);

  afterAll(removeTiny);

  test("a tarball matching the SHA256SUMS beside it loads", async () => {
    const file = carried("good", saved, "tiny.tar", `${"0".repeat(64)}  other.deb\n${sha256(saved)}  tiny.tar\n`);
    const r = await runSlipway(slipwayBinary(), ["builder-image", "import", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`verified ${file} against ${join(work, "good", "SHA256SUMS")}`);
    expect(r.stdout).toContain(tinyRef);
    expect(await present(tinyRef)).toBe(true);
    await removeTiny();
  }, 60_000);

  test("one flipped byte is refused, exit 1, and nothing is loaded", async () => {
    const file = carried("tampered", saved, "tiny.tar", `${sha256(saved)}  tiny.tar\n`);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1]! ^= 0x01;
    writeFileSync(file, bytes);
    const r = await runSlipway(slipwayBinary(), ["builder-image", "import", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^slipway: tiny\.tar does not match .*SHA256SUMS.*nothing was loaded/);
    expect(await present(tinyRef)).toBe(false);
  }, 60_000);

  test("a sums file without the tarball's line is refused and nothing is loaded", async () => {
    const file = carried("noline", saved, "tiny.tar", `${sha256(saved)}  another.tar\n`);
    const r = await runSlipway(slipwayBinary(), ["builder-image", "import", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("has no line for tiny.tar");
    expect(await present(tinyRef)).toBe(false);
  }, 60_000);

  test("with no sums file it refuses unless told --no-verify; --sums names one elsewhere", async () => {
    const file = carried("bare", saved, "tiny.tar", null);
    const refused = await runSlipway(slipwayBinary(), ["builder-image", "import", file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("cannot verify");
    expect(refused.stderr).toContain("--no-verify");
    expect(await present(tinyRef)).toBe(false);

    const both = await runSlipway(slipwayBinary(), ["builder-image", "import", "--no-verify", "--sums", "x", file]);
    expect(both.code).toBe(2);

    const sums = join(work, "elsewhere.sums");
    writeFileSync(sums, `${sha256(saved)}  tiny.tar\n`);
    const named = await runSlipway(slipwayBinary(), ["builder-image", "import", "--sums", sums, file]);
    expect(named.code, named.stderr).toBe(0);
    expect(await present(tinyRef)).toBe(true);
    await removeTiny();

    const unverified = await runSlipway(slipwayBinary(), ["builder-image", "import", "--no-verify", file]);
    expect(unverified.code, unverified.stderr).toBe(0);
    expect(unverified.stderr).toContain("without verification");
    expect(await present(tinyRef)).toBe(true);
    await removeTiny();
  }, 60_000);

  test("package:offline writes one tarball that sha256sum checks and whose image imports", async () => {
    const deb = standInDeb();
    // The script needs the image on the engine: load it unverified once (the test made it).
    expect((await runSlipway(slipwayBinary(), ["builder-image", "import", "--no-verify", saved])).code).toBe(0);
    const out = join(work, "dist");
    const made = sh(
      [
        process.execPath,
        join(ROOT, "scripts", "package-offline.ts"),
        "--arch",
        "amd64",
        "--deb",
        deb,
        "--image",
        tinyRef,
        "--out",
        out,
      ],
      ROOT,
    );
    expect(made.code, made.out).toBe(0);
    await removeTiny();
    const name = `slipway-offline_${version}_amd64`;
    expect(readdirSync(out)).toEqual([`${name}.tar.gz`]);

    // What INSTALL says, on the carried side.
    const site = join(work, "site");
    mkdirSync(site);
    expect(sh(["tar", "-xzf", join(out, `${name}.tar.gz`)], site).code).toBe(0);
    const dir = join(site, name);
    const image = `tiny-${suffix}-v1.tar`;
    expect(readdirSync(dir).sort()).toEqual(["INSTALL", "SHA256SUMS", image, `slipway_${version}_amd64.deb`].sort());
    const check = sh(["sha256sum", "-c", "SHA256SUMS"], dir);
    expect(check.code, check.out).toBe(0);
    expect(check.out.trim().split("\n")).toHaveLength(3);
    const install = readFileSync(join(dir, "INSTALL"), "utf8");
    expect(install).toContain(`tar -xzf ${name}.tar.gz && cd ${name}`);
    expect(install).toContain(`sha256sum -c SHA256SUMS && sudo apt install ./slipway_${version}_amd64.deb`);
    expect(install).toContain(`sudo slipway builder-image import ${image}`);
    expect(sh(["dpkg-deb", "--field", join(dir, `slipway_${version}_amd64.deb`), "Package"]).out.trim()).toBe(
      "slipway",
    );

    const imported = await runSlipway(slipwayBinary(), ["builder-image", "import", join(dir, image)]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain("verified");
    expect(await present(tinyRef)).toBe(true);
  }, 120_000);

  test("package:offline refuses an image the engine lacks, naming how to make it", () => {
    const made = sh([
      process.execPath,
      join(ROOT, "scripts", "package-offline.ts"),
      "--deb",
      standInDeb(),
      "--image",
      `slipway-test-offline/absent-${suffix}:v1`,
      "--out",
      join(work, "dist-absent"),
    ]);
    expect(made.code).toBe(1);
    expect(made.out).toContain("sudo slipway builder-image build");
  });
});

// The bundle with the real builder image, installed with no network at all, is the system test's
// (test/system/deb.test.ts): it runs package:offline on the default image and INSTALL's commands.
