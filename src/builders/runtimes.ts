/**
 * @module builders/runtimes
 * The two builder runtimes as data: what the container runs, where its state
 * lives (the cache volume is mounted there), where its socket appears, and the configuration file
 * Slipway writes into the socket directory — which carries the project's cache policy as
 * BuildKit garbage collection.
 */
import type { BuilderRuntime } from "../router/index.ts";

/** Inside the container: the bind-mounted directory that carries the socket and the config. */
export const CONTAINER_RUN_DIR = "/run/slipway";

/** In the run dir: the appliance CA, which the registry's certificate (serve's) chains to. */
export const REGISTRY_CA_FILE = "registry-ca.pem";

export interface CachePolicy {
  /** The volume's size; GC keeps the cache below ~90 % of it. */
  cacheSizeBytes: number;
  /** Cache records unused for longer than this are collected first. */
  keepDays: number;
  /** Concurrent build steps (buildkitd only; dockerd sizes it by itself). */
  maxParallelism: number;
  /** Registries builds may push to and pull from over plain HTTP (host:port; dockerd also takes CIDRs). */
  insecureRegistries?: readonly string[];
  /** dockerd only: keep images in containerd's store (dockerd ≥ 24), which BuildKit's `image`
   * exporter needs for --push; its state stays under the data root, on the cache volume. */
  containerdStore?: boolean;
  /** buildkitd: the appliance registry's host:port, trusted with REGISTRY_CA_FILE (dockerd gets
   * it in /etc/docker/certs.d instead). */
  registryCaHost?: string;
  /** Other host:port names of the same registry (the public host with the API's port). */
  registryCaAliases?: readonly string[];
}

export interface RuntimeSpec {
  runtime: BuilderRuntime;
  /** Mount point of the cache volume inside the container. */
  stateDir: string;
  socketName: string;
  /** The configuration for `policy`: a file written into the run dir, or passed in the environment. */
  config(policy: CachePolicy): string;
  /** How the container gets it: Cmd (the image's entrypoint runs it), Env, and files for the run dir. */
  container(policy: CachePolicy): { cmd: string[]; env: string[]; files: Record<string, string> };
}

/** GC keeps this much of the volume: the rest is headroom for a build in flight. */
export const keepBytes = (p: CachePolicy) => Math.floor(p.cacheSizeBytes * 0.9);

export const RUNTIMES: Record<BuilderRuntime, RuntimeSpec> = {
  buildkitd: {
    runtime: "buildkitd",
    stateDir: "/var/lib/buildkit",
    socketName: "buildkitd.sock",
    // The upstream image's entrypoint is buildkitd.
    container(p) {
      return {
        cmd: [
          "--addr",
          `unix://${CONTAINER_RUN_DIR}/buildkitd.sock`,
          "--config",
          `${CONTAINER_RUN_DIR}/buildkitd.toml`,
          "--root",
          "/var/lib/buildkit",
        ],
        env: [],
        files: { "buildkitd.toml": this.config(p) },
      };
    },
    config: (p) =>
      [
        "# Written by Slipway for this builder; rewritten at every start.",
        "[grpc]",
        `  address = ["unix://${CONTAINER_RUN_DIR}/buildkitd.sock"]`,
        "[worker.oci]",
        "  enabled = true",
        "  gc = true",
        `  gckeepstorage = ${keepBytes(p)}`,
        `  max-parallelism = ${Math.max(1, Math.trunc(p.maxParallelism))}`,
        "  [[worker.oci.gcpolicy]]",
        `    keepDuration = "${Math.trunc(p.keepDays) * 24}h"`,
        `    keepBytes = ${keepBytes(p)}`,
        "  [[worker.oci.gcpolicy]]",
        "    all = true",
        `    keepBytes = ${keepBytes(p)}`,
        "[worker.containerd]",
        "  enabled = false",
        // CIDRs are dockerd's notion; buildkitd configures registries by host.
        ...(p.insecureRegistries ?? [])
          .filter((r) => !r.includes("/"))
          .flatMap((r) => [`[registry.${JSON.stringify(r)}]`, "  http = true", "  insecure = true"]),
        ...(p.registryCaHost ? [p.registryCaHost, ...(p.registryCaAliases ?? [])] : []).flatMap((h) => [
          `[registry.${JSON.stringify(h)}]`,
          `  ca = [${JSON.stringify(`${CONTAINER_RUN_DIR}/${REGISTRY_CA_FILE}`)}]`,
        ]),
        "",
      ].join("\n"),
  },
  dockerd: {
    runtime: "dockerd",
    stateDir: "/var/lib/docker",
    socketName: "dockerd.sock",
    // Slipway's image (builder-image build): its entrypoint starts dockerd on
    // /run/slipway/dockerd.sock with /var/lib/docker as data root, and writes
    // SLIPWAY_DOCKERD_CONFIG_JSON as daemon.json (which must not repeat hosts or data-root).
    container(p) {
      return { cmd: [], env: [`SLIPWAY_DOCKERD_CONFIG_JSON=${this.config(p).trim()}`], files: {} };
    },
    config: (p) =>
      `${JSON.stringify(
        {
          ...(p.insecureRegistries?.length ? { "insecure-registries": [...p.insecureRegistries] } : {}),
          ...(p.containerdStore ? { features: { "containerd-snapshotter": true } } : {}),
          // dockerd's embedded BuildKit garbage collection: first what is older than keep-days,
          // then anything, down to the kept size.
          builder: {
            gc: {
              enabled: true,
              defaultKeepStorage: `${keepBytes(p)}B`,
              policy: [
                { keepStorage: `${keepBytes(p)}B`, filter: [`unused-for=${Math.trunc(p.keepDays) * 24}h`] },
                { keepStorage: `${keepBytes(p)}B`, all: true },
              ],
            },
          },
        },
        null,
        2,
      )}\n`,
  },
};

/** Docker's architecture names → OCI platforms. */
const ARCH: Record<string, string> = {
  x86_64: "linux/amd64",
  amd64: "linux/amd64",
  aarch64: "linux/arm64",
  arm64: "linux/arm64",
  armv7l: "linux/arm/v7",
  s390x: "linux/s390x",
  ppc64le: "linux/ppc64le",
  riscv64: "linux/riscv64",
};

export function platformOfArch(arch: string): string | null {
  return ARCH[arch] ?? null;
}

/** `amd64` → `linux/amd64`, `linux/arm64/v8` → `linux/arm64`; null for what is no platform. */
export function normalizePlatform(input: string): string | null {
  const p = input.trim().toLowerCase();
  const parts = p.split("/");
  const withOs = parts.length === 1 ? ["linux", parts[0]!] : parts;
  if (withOs[0] !== "linux" || withOs.length > 3) return null;
  const [os, arch, variant] = withOs;
  if (!/^[a-z0-9]+$/.test(arch ?? "") || (variant !== undefined && !/^v[0-9]$/.test(variant))) return null;
  if (arch === "arm64" && variant === "v8") return "linux/arm64";
  const known = new Set(["amd64", "arm64", "arm", "386", "s390x", "ppc64le", "riscv64"]);
  if (!known.has(arch!)) return null;
  return [os, arch, ...(variant ? [variant] : [])].join("/");
}

/** The qemu-user binfmt handler name for a platform (as qemu-user-static registers it). */
export function qemuBinfmtName(platform: string): string | null {
  const arch = platform.split("/")[1];
  const m: Record<string, string> = {
    amd64: "qemu-x86_64",
    arm64: "qemu-aarch64",
    arm: "qemu-arm",
    "386": "qemu-i386",
    s390x: "qemu-s390x",
    ppc64le: "qemu-ppc64le",
    riscv64: "qemu-riscv64",
  };
  return arch ? (m[arch] ?? null) : null;
}
