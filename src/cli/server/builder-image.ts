/**
 * @module cli/server/builder-image
 * `slipway builder-image`: builder images on this host's Docker engine. `build` assembles the
 * dockerd runtime image from a Debian mirror (root: debootstrap); `import` loads a `docker save`
 * tarball (the offline bundle's builder image, or an upstream moby/buildkit image carried in by
 * hand) once it matches its SHA256SUMS line; `status` says which runtime and
 * image the configuration names and whether that image is present.
 */
import { existsSync } from "node:fs";
import Docker from "dockerode";
import {
  builderImageServiceFactory,
  configuredImage,
  judgeImage,
  SUITES,
  SUMS_FILE_NAME,
  sumsBeside,
  verifyAgainstSums,
  type Suite,
  type VerifiedFile,
} from "../../builders/image/index.ts";
import { dispatch, str } from "../subcommands.ts";
import { dockerSocketPath } from "../../doctor/checks.ts";
import { NotFoundError, PreconditionError, UsageError } from "../../errors.ts";
import { createLogger } from "../../log/logger.ts";
import { EXIT_FAILED, EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import { SERVER_FLAGS, SERVER_HELP, SERVER_OPTIONS, loadServerConfig } from "./options.ts";

function service(ctx: CommandContext) {
  const docker = new Docker({ socketPath: dockerSocketPath(ctx.env) });
  const log = createLogger({ level: "info", format: "pretty", write: (line) => ctx.io.err(line) });
  return builderImageServiceFactory({ docker, log });
}

async function build(ctx: CommandContext): Promise<number> {
  const suite = str(ctx, "suite") ?? "trixie";
  if (!(SUITES as readonly string[]).includes(suite))
    throw new UsageError(`--suite must be one of ${SUITES.join(", ")}`);
  const loaded = loadServerConfig(ctx);
  const tag = str(ctx, "tag") ?? `slipway/builder-dockerd:${suite}`;
  const t0 = performance.now();
  const img = await service(ctx).build({ suite: suite as Suite, mirror: str(ctx, "mirror"), tag });
  const seconds = (performance.now() - t0) / 1000;
  if (ctx.client.json) printJson(ctx.io, { ...img, seconds });
  else {
    ctx.io.out(`${img.ref} ${img.id}`);
    ctx.io.out(
      `  Debian ${img.suite} from ${img.mirror}, recipe ${img.recipe}, ${(img.sizeBytes / 1e6).toFixed(0)} MB, ${seconds.toFixed(0)} s (debootstrap ${img.timings.debootstrap.toFixed(0)} s, tar ${img.timings.tar.toFixed(0)} s, import ${img.timings.import.toFixed(0)} s)`,
    );
    const configured = loaded.config.builders.dockerd_image;
    if (configured !== img.ref)
      ctx.io.out(`  note: builders.dockerd_image is ${configured}; set it to ${img.ref} to use this image`);
  }
  return EXIT_OK;
}

/**
 * Refuses by default when nothing can vouch for the tarball: an air-gapped operator carries it
 * across on removable media, and the image becomes every builder (run with broad capabilities),
 * so loading an unverified one must be a deliberate `--no-verify`, never a warning scrolled past.
 */
async function verifyTar(ctx: CommandContext, file: string): Promise<VerifiedFile | null> {
  const sums = str(ctx, "sums");
  if (!existsSync(file)) throw new NotFoundError(`no such file: ${file}`);
  if (ctx.values["no-verify"] === true) {
    if (sums) throw new UsageError("--sums and --no-verify contradict each other: give one");
    ctx.io.err(`warning: loading ${file} without verification (--no-verify)`);
    return null;
  }
  const sumsPath = sums ?? sumsBeside(file);
  if (!sumsPath)
    throw new PreconditionError(
      `cannot verify ${file}: no ${SUMS_FILE_NAME} beside it and no --sums FILE; nothing was loaded (--no-verify loads it unverified)`,
    );
  return verifyAgainstSums(file, sumsPath);
}

async function importTar(ctx: CommandContext, file: string): Promise<number> {
  const verified = await verifyTar(ctx, file);
  if (verified && !ctx.client.json) ctx.io.out(`verified ${file} against ${verified.sums} (sha256 ${verified.sha256})`);
  const loaded = await service(ctx).importTarball(file);
  if (ctx.client.json)
    printJson(ctx.io, { ...loaded, verified: verified ? { sums: verified.sums, sha256: verified.sha256 } : null });
  else {
    for (const i of loaded.images) ctx.io.out(`${i.ref} ${i.id}`);
    for (const id of loaded.untagged)
      ctx.io.out(`(untagged) ${id}  — tag it (docker tag ${id.slice(7, 19)} NAME) and set builders.buildkitd_image`);
  }
  return EXIT_OK;
}

async function status(ctx: CommandContext): Promise<number> {
  const c = configuredImage(loadServerConfig(ctx).config.builders);
  const v = await judgeImage(service(ctx), c);
  if (ctx.client.json)
    printJson(ctx.io, {
      runtime: c.runtime,
      image: c.image,
      ...(v.state ?? { present: null }),
      status: v.status,
      ...(v.fix ? { fix: v.fix } : {}),
    });
  else ctx.io.out(`${v.status.padEnd(4)}  ${v.message}${v.fix ? ` — fix: ${v.fix}` : ""}`);
  return v.status === "ok" ? EXIT_OK : EXIT_FAILED;
}

export const builderImageCommand: Command = {
  name: "builder-image",
  summary: "builder images: assemble the dockerd image from Debian packages, load a tarball, show status",
  usage: [
    "slipway builder-image build [--suite trixie|bookworm] [--mirror URL] [--tag REF]   (as root)",
    "       slipway builder-image import FILE.tar [--sums SHA256SUMS | --no-verify]",
    "       slipway builder-image status",
  ].join("\n"),
  options: {
    ...SERVER_OPTIONS,
    suite: { type: "string" },
    mirror: { type: "string" },
    tag: { type: "string" },
    sums: { type: "string" },
    "no-verify": { type: "boolean" },
  },
  optionHelp: {
    ...SERVER_HELP,
    suite: "build: Debian suite (trixie or bookworm; default trixie: bookworm's dockerd cannot export images)",
    mirror: "build: Debian archive URL (default: the host's APT sources, else http://deb.debian.org/debian)",
    tag: "build: image reference to tag (default slipway/builder-dockerd:<suite>)",
    sums: "import: the SHA256SUMS file to check FILE.tar against (default: the one beside FILE.tar)",
    "no-verify": "import: load FILE.tar without checking it (refused by default when no sums file is found)",
  },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "builder-image",
      {
        build: { options: [...SERVER_FLAGS, "suite", "mirror", "tag"], run: () => build(ctx) },
        import: { options: ["sums", "no-verify"], args: ["FILE.tar"], run: (_c, [file]) => importTar(ctx, file!) },
        status: { options: SERVER_FLAGS, run: () => status(ctx) },
      },
      ctx,
    ),
};
