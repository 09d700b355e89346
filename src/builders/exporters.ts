/**
 * @module builders/exporters
 * Which BuildKit exporters the configured builder runtime has, and which ones a build's options
 * need, so that a build asking for an output its builder cannot produce is refused at CreateBuild
 * with the setting that fixes it — instead of failing after the whole build ran, or (for the depot
 * CLI's `--load`, which falls back from one exporter to another) appearing to succeed.
 *
 * What the runtimes have, as found: upstream buildkitd has all of
 * them; dockerd's embedded BuildKit has `local` and `tar` always, and `image`, `docker` and `oci`
 * only with containerd's image store, which bookworm's dockerd 20.10 does not have.
 */

/** The exporters every runtime has. */
const BASIC = new Set(["local", "tar", "cacheonly"]);
/** The ones that make an image: missing on dockerd without containerd's image store. */
const IMAGE = new Set(["image", "docker", "oci"]);

/** What a build asks for, as CreateBuild's BuildOptions carry it. */
export interface ExportRequest {
  outputs: { kind: string }[];
  push: boolean;
  load: boolean;
  save?: boolean;
}

/** The exporters a build needs. `registry` is `image` with push; `--load` needs `docker` too (the depot CLI's fallback). */
export function exportersNeeded(options: readonly ExportRequest[]): Set<string> {
  const kinds = new Set<string>();
  for (const o of options) {
    for (const out of o.outputs) kinds.add(out.kind === "registry" ? "image" : out.kind);
    if (o.push || o.save) kinds.add("image");
    if (o.load) {
      kinds.add("image");
      kinds.add("docker");
    }
  }
  return kinds;
}

export interface RuntimeExporters {
  runtime: "dockerd" | "buildkitd";
  /** builders.dockerd_containerd_store */
  containerdStore: boolean;
  /** The dockerd image's Debian suite (its io.slipway.suite label), null when unknown. */
  suite: string | null;
}

/** Why the runtime cannot export `kinds` and what fixes it, or null when it can (or cannot tell). */
export function exporterRefusal(r: RuntimeExporters, kinds: ReadonlySet<string>): string | null {
  if (r.runtime === "buildkitd") return null;
  const missing = [...kinds].filter((k) => IMAGE.has(k) && !BASIC.has(k));
  if (missing.length === 0) return null;
  const what = `the ${missing.map((k) => `"${k}"`).join(", ")} exporter${missing.length > 1 ? "s are" : " is"} not available on this appliance's builders`;
  if (r.suite === "bookworm") {
    return `${what}: their image is Debian bookworm's dockerd 20.10, which has only the local and tar exporters. The administrator fixes it with \`slipway builder-image build --suite trixie\`, builders.dockerd_image = "slipway/builder-dockerd:trixie" and builders.dockerd_containerd_store = true (or builders.runtime = "buildkitd"); meanwhile use --output type=local or type=tar`;
  }
  if (!r.containerdStore) {
    return `${what}: dockerd needs containerd's image store for them. The administrator fixes it with builders.dockerd_containerd_store = true (or builders.runtime = "buildkitd"); meanwhile use --output type=local or type=tar`;
  }
  return null;
}

/**
 * The check CreateBuild runs: synchronous (admission is on the hot path), on the image suite read
 * at start and re-read in the background at most every `refreshMs`, so a rebuilt or re-tagged
 * image is noticed without asking Docker on every build.
 */
export function exporterCheckFactory(deps: {
  runtime: "dockerd" | "buildkitd";
  containerdStore: boolean;
  suiteOf: () => Promise<string | null>;
  refreshMs?: number;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const refreshMs = deps.refreshMs ?? 30_000;
  let suite: string | null = null;
  let readAt = -Infinity;
  let reading: Promise<void> | null = null;
  const refresh = (): Promise<void> => {
    reading ??= deps
      .suiteOf()
      .then((s) => {
        suite = s;
      })
      .catch(() => {}) // an unreachable engine: keep what was known
      .finally(() => {
        readAt = now();
        reading = null;
      });
    return reading;
  };
  return {
    refresh,
    /** Why `options` cannot be exported here, or null. */
    refusal(options: readonly ExportRequest[]): string | null {
      if (deps.runtime === "dockerd" && now() - readAt > refreshMs) void refresh();
      return exporterRefusal(
        { runtime: deps.runtime, containerdStore: deps.containerdStore, suite },
        exportersNeeded(options),
      );
    },
    /** Whether builders can push images (BuildKit's `image` exporter): the registry's --load path needs it. */
    canPush(): boolean {
      return this.refusal([{ outputs: [], push: true, load: false }]) === null;
    },
  };
}

export type ExporterCheck = ReturnType<typeof exporterCheckFactory>;
