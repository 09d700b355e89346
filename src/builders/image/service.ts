/**
 * @module builders/image/service
 * Builder images on the local Docker engine: assembles the `dockerd` runtime image from Debian
 * packages (debootstrap minbase + docker.io, see recipe.ts) and `docker import`s it with its
 * entrypoint and labels; loads image tarballs (`docker save` format) for air-gapped sites; and
 * says whether a configured image is present. Engine calls go through dockerode; debootstrap,
 * tar and umount through src/host.
 */
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type Docker from "dockerode";
import { InvalidInputError, NotFoundError, PreconditionError, SlipwayError } from "../../errors.ts";
import { run as hostRun, which, type RunOptions, type RunResult } from "../../host/run.ts";
import type { Logger } from "../../log/logger.ts";
import { defaultMirror } from "./mirror.ts";
import {
  DEFAULT_DOCKERD_IMAGE,
  DOCKERD_ENTRYPOINT,
  ENTRYPOINT_SCRIPT,
  LABEL_BUILT,
  LABEL_MIRROR,
  LABEL_RECIPE,
  LABEL_RUNTIME,
  LABEL_SUITE,
  PACKAGES,
  SUITES,
  importChanges,
  recipeHash,
  type Suite,
} from "./recipe.ts";

export type BuilderRuntimeName = "dockerd" | "buildkitd";

export interface BuildOptions {
  suite?: Suite;
  /** Debian archive URL; default: the host's APT sources, else deb.debian.org. */
  mirror?: string;
  /** Image reference to tag; default `slipway/builder-dockerd:<suite>`. */
  tag?: string;
  /** Where the rootfs is assembled (needs space, device nodes and exec): default /var/tmp. */
  workDir?: string;
  /** debootstrap --cache-dir: keeps downloaded .debs between builds. */
  debCacheDir?: string;
  /** Also keep the finished rootfs tarball at this path (to re-import without debootstrap). */
  keepTarball?: string;
}

export interface BuiltImage {
  ref: string;
  /** The image id (`sha256:` of its config): what containers pin and labels record. */
  id: string;
  suite: Suite;
  mirror: string;
  recipe: string;
  sizeBytes: number;
  /** Seconds spent per step. */
  timings: { debootstrap: number; tar: number; import: number };
}

export interface ImageState {
  ref: string;
  present: boolean;
  id?: string;
  /** A registry digest (`name@sha256:…`) when the image has one, else the image id. */
  digest?: string;
  /** The io.slipway.runtime label, if the image carries one. */
  runtime?: string;
  suite?: string;
  recipe?: string;
  created?: string;
  sizeBytes?: number;
}

export interface LoadedImages {
  /** References the tarball carried (`repo:tag`), each with its id. */
  images: { ref: string; id: string }[];
  /** Ids of untagged images it carried. */
  untagged: string[];
}

export interface BuilderImageDeps {
  docker: Docker;
  log: Logger;
  /** Host command runner (src/host); replaceable only in unit tests. */
  run?: (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;
  /** Effective uid, for the root check (default process.getuid()). */
  uid?: number;
}

export interface BuilderImageService {
  build(opts?: BuildOptions): Promise<BuiltImage>;
  /** Imports an already assembled rootfs tarball (what `keepTarball` wrote) as the image. */
  importRootfs(
    tarPath: string,
    meta: { ref?: string; suite: Suite; mirror: string },
  ): Promise<Omit<BuiltImage, "timings"> & { timings: { import: number } }>;
  importTarball(path: string): Promise<LoadedImages>;
  inspect(ref: string): Promise<ImageState>;
}

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
/** `[registry[:port]/]path[:tag]` (no digest: a tag is what gets written). */
/** A registry is a first component with a dot or a port, or localhost (as Docker decides). */
const REGISTRY = "(?:(?:localhost|[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+)(?::[0-9]+)?|[A-Za-z0-9-]+:[0-9]+)/";
const REF = new RegExp(`^(?:${REGISTRY})?${COMPONENT}(?:/${COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`);

/** `repo[:tag]` → its parts (a `:` after the last `/` is the tag; default `latest`). */
export function splitRef(ref: string): { repo: string; tag: string } {
  if (!REF.test(ref)) {
    throw new InvalidInputError(
      `invalid image reference '${ref}': expected repository[:tag] in lower case, e.g. ${DEFAULT_DOCKERD_IMAGE}`,
      [{ pointer: "/tag", detail: "not an image reference" }],
    );
  }
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref, tag: "latest" };
}

export function validateMirror(mirror: string): string {
  let u: URL;
  try {
    u = new URL(mirror);
  } catch {
    throw new InvalidInputError(
      `invalid mirror '${mirror}': expected an http(s) URL of a Debian archive, e.g. http://deb.debian.org/debian`,
      [{ pointer: "/mirror", detail: "not a URL" }],
    );
  }
  if (u.protocol !== "http:" && u.protocol !== "https:" && u.protocol !== "file:") {
    throw new InvalidInputError(`invalid mirror '${mirror}': debootstrap takes http://, https:// or file:// archives`, [
      { pointer: "/mirror", detail: "unsupported scheme" },
    ]);
  }
  return mirror.replace(/\/+$/, "");
}

interface Progress {
  status?: string;
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Reads a Docker JSON-lines progress stream to its end; rejects on an `error` entry. */
function followProgress(docker: Docker, stream: NodeJS.ReadableStream): Promise<Progress[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, out: Progress[]) => {
      if (err) return reject(err);
      const bad = out.find((p) => p.error || p.errorDetail);
      if (bad) return reject(new SlipwayError(`Docker refused the image: ${bad.errorDetail?.message ?? bad.error}`));
      resolve(out);
    });
  });
}

function dockerUnreachable(e: unknown): SlipwayError {
  const m = e instanceof Error ? e.message : String(e);
  return new PreconditionError(
    `the Docker engine is not reachable (${m}); start dockerd and make sure this user can use its socket`,
  );
}

const statusCode = (e: unknown) => (e as { statusCode?: number }).statusCode;

/** Paths mounted at or below `dir` (deepest first), from /proc/self/mounts. */
function mountsUnder(dir: string): string[] {
  let text = "";
  try {
    text = readFileSync("/proc/self/mounts", "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .map((l) => (l.split(" ")[1] ?? "").replace(/\\040/g, " "))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Removes what debootstrap leaves that has no place in an image, and installs the entrypoint. */
export function finishRootfs(rootfs: string): void {
  const empty = (rel: string, keep?: (name: string) => boolean) => {
    const d = join(rootfs, rel);
    if (!existsSync(d)) return;
    for (const name of readdirSync(d)) if (!keep?.(name)) rmSync(join(d, name), { recursive: true, force: true });
  };
  empty("var/cache/apt");
  empty("var/lib/apt/lists", (n) => n === "partial");
  empty("var/log");
  empty("usr/share/man");
  empty("usr/share/locale");
  empty("usr/share/info");
  empty("dev");
  empty("tmp");
  empty("run");
  // Keep each package's copyright file (licence compliance), drop the rest of its docs.
  const doc = join(rootfs, "usr/share/doc");
  if (existsSync(doc)) {
    for (const pkg of readdirSync(doc)) {
      const p = join(doc, pkg);
      if (!statSync(p).isDirectory()) continue;
      for (const f of readdirSync(p)) if (f !== "copyright") rmSync(join(p, f), { recursive: true, force: true });
    }
  }
  // The assembling host's identity never goes into the image; Docker provides these at run time.
  for (const f of ["etc/hostname", "etc/resolv.conf", "etc/machine-id", "var/lib/dbus/machine-id"])
    rmSync(join(rootfs, f), { force: true });
  writeFileSync(join(rootfs, "etc/machine-id"), "");
  writeFileSync(join(rootfs, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n");
  const ep = join(rootfs, DOCKERD_ENTRYPOINT);
  mkdirSync(join(ep, ".."), { recursive: true });
  writeFileSync(ep, ENTRYPOINT_SCRIPT);
  chmodSync(ep, 0o755);
}

export function builderImageServiceFactory(deps: BuilderImageDeps): BuilderImageService {
  const { docker, log } = deps;
  const run = deps.run ?? hostRun;
  const uid = deps.uid ?? process.getuid?.() ?? 0;

  async function inspect(ref: string): Promise<ImageState> {
    try {
      const info = await docker.getImage(ref).inspect();
      const labels = info.Config?.Labels ?? {};
      return {
        ref,
        present: true,
        id: info.Id,
        digest: info.RepoDigests?.[0] ?? info.Id,
        runtime: labels[LABEL_RUNTIME],
        suite: labels[LABEL_SUITE],
        recipe: labels[LABEL_RECIPE],
        created: info.Created,
        sizeBytes: info.Size,
      };
    } catch (e) {
      if (statusCode(e) === 404) return { ref, present: false };
      throw dockerUnreachable(e);
    }
  }

  async function importRootfs(tarPath: string, meta: { ref?: string; suite: Suite; mirror: string }) {
    const ref = meta.ref ?? `slipway/builder-dockerd:${meta.suite}`;
    const { repo, tag } = splitRef(ref);
    const recipe = recipeHash(meta.suite);
    const labels = {
      [LABEL_RUNTIME]: "dockerd",
      [LABEL_SUITE]: meta.suite,
      [LABEL_RECIPE]: recipe,
      [LABEL_BUILT]: new Date().toISOString(),
      [LABEL_MIRROR]: meta.mirror,
    };
    const t0 = performance.now();
    let out: Progress[];
    try {
      const stream = await docker.importImage(
        createReadStream(tarPath) as unknown as string,
        {
          repo,
          tag,
          changes: importChanges(labels),
          message: `slipway builder-image build (${meta.suite}, recipe ${recipe})`,
        } as Record<string, unknown>,
      );
      out = await followProgress(docker, stream);
    } catch (e) {
      if (e instanceof SlipwayError) throw e;
      if (statusCode(e) !== undefined) throw new SlipwayError(`docker import failed: ${(e as Error).message}`);
      throw dockerUnreachable(e);
    }
    const reported = out.map((p) => p.status ?? "").find((s) => s.startsWith("sha256:"));
    const state = await inspect(ref);
    if (!state.present || !state.id)
      throw new SlipwayError(`docker import reported ${reported ?? "nothing"} but ${ref} is not present`);
    const seconds = (performance.now() - t0) / 1000;
    log.info("builder image imported", {
      ref,
      id: state.id,
      suite: meta.suite,
      recipe,
      seconds: Number(seconds.toFixed(1)),
    });
    return {
      ref,
      id: state.id,
      suite: meta.suite,
      mirror: meta.mirror,
      recipe,
      sizeBytes: state.sizeBytes ?? 0,
      timings: { import: seconds },
    };
  }

  async function build(opts: BuildOptions = {}): Promise<BuiltImage> {
    const suite = opts.suite ?? "trixie";
    if (!SUITES.includes(suite))
      throw new InvalidInputError(`unknown suite '${suite}': expected one of ${SUITES.join(", ")}`, [
        { pointer: "/suite", detail: "unknown suite" },
      ]);
    const mirror = validateMirror(opts.mirror ?? defaultMirror());
    const ref = opts.tag ?? `slipway/builder-dockerd:${suite}`;
    splitRef(ref);
    if (uid !== 0) {
      throw new PreconditionError(
        "builder-image build needs root: debootstrap creates device nodes, sets file ownership and runs package scripts in a chroot. Run it with sudo (or as root), or import a prebuilt image with 'slipway builder-image import'",
      );
    }
    if (!which("debootstrap")) throw new PreconditionError("debootstrap is not installed: apt-get install debootstrap");
    if (!which("tar")) throw new PreconditionError("tar is not installed");
    // Fail before a minute of debootstrap if the engine is not there.
    try {
      await docker.ping();
    } catch (e) {
      throw dockerUnreachable(e);
    }

    const base = opts.workDir ?? "/var/tmp";
    mkdirSync(base, { recursive: true });
    const work = mkdtempSync(join(base, "slipway-builder-image-"));
    const rootfs = join(work, "rootfs");
    const tarPath = join(work, "rootfs.tar");
    try {
      const t0 = performance.now();
      const argv = ["debootstrap", "--variant=minbase", "--components=main", `--include=${PACKAGES.join(",")}`];
      if (opts.debCacheDir) {
        mkdirSync(opts.debCacheDir, { recursive: true });
        argv.push(`--cache-dir=${opts.debCacheDir}`);
      }
      argv.push(suite, rootfs, mirror);
      log.info("assembling the dockerd builder image with debootstrap", { suite, mirror, ref });
      const ds = await run(argv, { timeoutMs: 30 * 60_000 });
      if (ds.code !== 0) {
        const tail = `${ds.stdout}\n${ds.stderr}`.trim().split("\n").slice(-8).join("\n");
        const logFile = join(rootfs, "debootstrap/debootstrap.log");
        const detail = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").slice(-8).join("\n") : "";
        throw new SlipwayError(
          `debootstrap ${suite} from ${mirror} failed${ds.timedOut ? " (timed out)" : ` with exit ${ds.code}`}:\n${tail}${detail ? `\n${detail}` : ""}`,
        );
      }
      const debootstrapSeconds = (performance.now() - t0) / 1000;
      finishRootfs(rootfs);

      const t1 = performance.now();
      const tar = await run(
        [
          "tar",
          "--numeric-owner",
          "--xattrs",
          "--xattrs-include=security.capability",
          "-C",
          rootfs,
          "-cf",
          tarPath,
          ".",
        ],
        { timeoutMs: 10 * 60_000 },
      );
      if (tar.code !== 0)
        throw new SlipwayError(`tar of the rootfs failed: ${tar.stderr.trim().split("\n").slice(-3).join(" ")}`);
      const tarSeconds = (performance.now() - t1) / 1000;
      if (opts.keepTarball) {
        mkdirSync(join(opts.keepTarball, ".."), { recursive: true });
        copyFileSync(tarPath, `${opts.keepTarball}.partial`);
        // rename is atomic: a reader never sees half a tarball under the final name
        renameSync(`${opts.keepTarball}.partial`, opts.keepTarball);
      }
      const imported = await importRootfs(tarPath, { ref, suite, mirror });
      return {
        ...imported,
        timings: { debootstrap: debootstrapSeconds, tar: tarSeconds, import: imported.timings.import },
      };
    } finally {
      await removeWorkDir(work);
    }
  }

  /** Unmounts anything debootstrap left mounted in the work dir (a failed run can), then removes it. */
  async function removeWorkDir(work: string): Promise<void> {
    for (const m of mountsUnder(work)) await run(["umount", "-l", m]);
    if (mountsUnder(work).length > 0) {
      log.warn("builder image work dir still has mounts; left in place", { work });
      return;
    }
    rmSync(work, { recursive: true, force: true });
  }

  async function importTarball(path: string): Promise<LoadedImages> {
    if (!existsSync(path)) throw new NotFoundError(`no such file: ${path}`);
    if (!statSync(path).isFile())
      throw new InvalidInputError(`${path} is not a file: expected an image tarball written by 'docker save'`, [
        { pointer: "/file", detail: "not a file" },
      ]);
    let out: Progress[];
    try {
      const stream = await docker.loadImage(
        createReadStream(path) as unknown as string,
        { quiet: true } as Record<string, unknown>,
      );
      out = await followProgress(docker, stream);
    } catch (e) {
      if (e instanceof SlipwayError) throw e;
      if (statusCode(e) !== undefined) throw new SlipwayError(`docker load of ${path} failed: ${(e as Error).message}`);
      throw dockerUnreachable(e);
    }
    const text = out.map((p) => p.stream ?? p.status ?? "").join("\n");
    const refs = [...text.matchAll(/Loaded image: (\S+)/g)].map((m) => m[1]!);
    const untagged = [...text.matchAll(/Loaded image ID: (sha256:[0-9a-f]{64})/g)].map((m) => m[1]!);
    if (refs.length === 0 && untagged.length === 0)
      throw new SlipwayError(`docker load of ${path} loaded nothing: is it a 'docker save' tarball?`);
    const images: { ref: string; id: string }[] = [];
    for (const ref of refs) {
      const s = await inspect(ref);
      if (s.present && s.id) images.push({ ref, id: s.id });
    }
    log.info("image tarball loaded", { file: path, refs, untagged });
    return { images, untagged };
  }

  return { build, importRootfs, importTarball, inspect };
}
