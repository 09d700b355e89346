/**
 * @module builders/currency
 * Whether a running builder is on the configured image: the reference, the image id that reference
 * resolves to on the engine now (`slipway builder-image build` re-tags the same name), and the
 * appliance-wide runtime settings that shape its container. A builder that differs is recreated by
 * the manager when idle, on the same cache volume.
 *
 * The configured reference is resolved once at start, then again on the engine's image events
 * (tag, load, import, …) and on a slow timer as a fallback, so a warm build request never waits
 * for a Docker inspect.
 */
import { createHash } from "node:crypto";
import type Docker from "dockerode";
import type { Readable } from "node:stream";
import type { Logger } from "../log/logger.ts";
import type { BuilderRuntime } from "../router/index.ts";

/** What a builder was created from. `settings` is null for containers from before it was labelled. */
export interface BuilderImage {
  image: string | null;
  imageId: string | null;
  settings: string | null;
}

/** What a builder should be created from now. `imageId` is null when the reference is not on the engine. */
export interface WantedImage {
  image: string;
  imageId: string | null;
  settings: string;
}

/** A running builder that differs from the configuration, as /readyz, doctor and the API show it. */
export interface OutdatedBuilder {
  builderId: string;
  projectId: string;
  platform: string;
  from: { image: string | null; imageId: string | null };
  to: { image: string; imageId: string };
  /** The runtime settings (e.g. builders.dockerd_containerd_store) changed, whatever the image. */
  settingsChanged: boolean;
}

/** The appliance-wide settings that change what a builder container runs, as a short digest (a label). */
export function builderSettingsKey(s: {
  runtime: BuilderRuntime;
  containerdStore?: boolean;
  insecureRegistries?: readonly string[];
}): string {
  const canonical = JSON.stringify([s.runtime, s.containerdStore === true, [...(s.insecureRegistries ?? [])].sort()]);
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/**
 * How `have` differs from `want`, or null when it does not (or cannot be told: an image that is not
 * on the engine is no upgrade to recreate onto).
 */
export function imageDifference(have: BuilderImage, want: WantedImage): { image: boolean; settings: boolean } | null {
  if (!want.imageId) return null;
  const image = have.imageId !== want.imageId || have.image !== want.image;
  const settings = have.settings !== want.settings;
  return image || settings ? { image, settings } : null;
}

/** `old → new` for humans: reference and short image id on each side, and a settings change. */
export function describeOutdated(o: OutdatedBuilder): string {
  return `project ${o.projectId} ${describeChange(o)}`;
}

/** The platform and the change, naming no project: for /readyz, which anyone may read. */
function describeChange(o: OutdatedBuilder): string {
  const side = (image: string | null, id: string | null) =>
    `${image ?? "?"} (${id ? id.replace(/^sha256:/, "").slice(0, 12) : "?"})`;
  const change =
    o.from.imageId === o.to.imageId && o.from.image === o.to.image
      ? "same image, runtime settings changed"
      : `${side(o.from.image, o.from.imageId)} → ${side(o.to.image, o.to.imageId)}${o.settingsChanged ? ", runtime settings changed" : ""}`;
  return `${o.platform}: ${change}`;
}

/**
 * /readyz: builders still on an old image or settings are a warning (each is recreated when next
 * idle). /readyz answers anyone, so it names no project: `slipway doctor` and each project's
 * builders API do.
 */
export function builderCurrencyHealthCheck(builders: { outdated(): OutdatedBuilder[] }): {
  name: string;
  run(): { status: "pass" | "warn"; observedValue: number; output: string };
} {
  return {
    name: "builders:image-current",
    run: () => {
      const old = builders.outdated();
      return old.length === 0
        ? { status: "pass", observedValue: 0, output: "every running builder is on the configured image" }
        : {
            status: "warn",
            observedValue: old.length,
            output: `${old.length} running builder(s) on an old image, recreated when next idle (slipway doctor names their projects): ${[...new Set(old.map(describeChange))].join("; ")}`,
          };
    },
  };
}

/** The image events after which a reference may resolve to another id. */
const IMAGE_EVENTS = ["tag", "untag", "load", "import", "pull", "delete"];

export interface ImageCurrencyDeps {
  docker: Pick<Docker, "getImage" | "getEvents">;
  image: string;
  settings: string;
  log: Logger;
  /** Fallback re-resolution period (events do the prompt work). */
  refreshMs?: number;
  /** Called when the configured image's id changed (not on the first resolution). */
  onChange?: (want: WantedImage) => void;
}

/** Resolves the configured reference to an image id, cached, and tracks what each builder runs. */
export function imageCurrencyFactory(deps: ImageCurrencyDeps) {
  let imageId: string | null = null;
  let resolvedOnce = false;
  const running = new Map<string, BuilderImage>();
  let timer: ReturnType<typeof setInterval> | null = null;
  let events: Readable | null = null;
  let pending: Promise<WantedImage> | null = null;
  /** An event came while an inspect was under way: that inspect may predate it, so run another. */
  let again = false;

  const wanted = (): WantedImage => ({ image: deps.image, imageId, settings: deps.settings });

  /** Records the id the reference resolves to now; tells the manager when it changed. */
  function learned(id: string | null) {
    const changed = resolvedOnce && id !== imageId;
    imageId = id;
    resolvedOnce = true;
    if (changed) {
      deps.log.info("the configured builder image changed", { image: deps.image, image_id: id });
      if (id) deps.onChange?.(wanted());
    }
  }

  async function resolve(): Promise<WantedImage> {
    try {
      learned(((await deps.docker.getImage(deps.image).inspect()) as { Id: string }).Id);
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) learned(null);
      else deps.log.warn("resolving the builder image failed", { image: deps.image, error: (e as Error).message });
    }
    return wanted();
  }
  async function resolveUntilSettled(): Promise<WantedImage> {
    do {
      again = false;
      await resolve();
    } while (again);
    return wanted();
  }

  return {
    wanted,
    learned,
    /** Inspects the reference now (callers arriving during an inspect share the next one). */
    refresh(): Promise<WantedImage> {
      if (pending) {
        again = true;
        return pending;
      }
      pending = resolveUntilSettled().finally(() => (pending = null));
      return pending;
    },
    /** A builder's container now runs `have`. */
    track(builderId: string, have: BuilderImage) {
      running.set(builderId, have);
    },
    untrack(builderId: string) {
      running.delete(builderId);
    },
    /** How builder `builderId` differs from the configuration, or null (also when not running). */
    difference(builderId: string) {
      const have = running.get(builderId);
      return have ? imageDifference(have, wanted()) : null;
    },
    /** The running builders among `rows` that differ, with what they run and what they would run. */
    outdated(rows: readonly { id: string; project_id: string; platform: string }[]): OutdatedBuilder[] {
      const want = wanted();
      const out: OutdatedBuilder[] = [];
      for (const r of rows) {
        const have = running.get(r.id);
        const d = have && imageDifference(have, want);
        if (d)
          out.push({
            builderId: r.id,
            projectId: r.project_id,
            platform: r.platform,
            from: { image: have.image, imageId: have.imageId },
            to: { image: want.image, imageId: want.imageId! },
            settingsChanged: d.settings,
          });
      }
      return out;
    },
    /** Follows the engine's image events and re-resolves on a timer. */
    async watch(): Promise<void> {
      if (timer) return;
      timer = setInterval(() => void this.refresh(), deps.refreshMs ?? 60_000);
      timer.unref?.();
      const stream = (await deps.docker.getEvents({
        filters: JSON.stringify({ type: ["image"], event: IMAGE_EVENTS }),
      })) as unknown as Readable;
      events = stream;
      // Any image event may move the reference: one inspect settles it (refresh coalesces bursts).
      stream.on("data", () => void this.refresh());
      stream.on("error", () => {});
    },
    close(): void {
      if (timer) clearInterval(timer);
      timer = null;
      events?.destroy();
      events = null;
    },
  };
}

export type ImageCurrency = ReturnType<typeof imageCurrencyFactory>;
