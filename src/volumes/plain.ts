/**
 * @module volumes/plain
 * The unencrypted backend: one directory per (project, platform) under the data dir. It exists
 * for hosts without dm-crypt, where the operator must choose it explicitly; it reports
 * `encryption: none` so every surface can say so.
 */
import { mkdirSync, rmSync, existsSync, renameSync, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { MountedVolume, VolumeManager, VolumeRef, VolumeUsage } from "./types.ts";

/** `linux/arm64/v8` → `linux-arm64-v8`; project ids are already [a-z0-9_]. */
export function volumeName(ref: VolumeRef): string {
  if (!/^[A-Za-z0-9_-]+$/.test(ref.projectId)) throw new Error(`invalid project id for a volume: ${ref.projectId}`);
  if (!/^[a-z0-9]+(\/[a-z0-9]+){0,2}$/.test(ref.platform))
    throw new Error(`invalid platform for a volume: ${ref.platform}`);
  return `${ref.projectId}--${ref.platform.replaceAll("/", "-")}`;
}

/** Sums apparent file sizes without following symlinks or crossing into other filesystems' mounts. */
function diskUsage(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      continue;
    }
    for (const name of entries) {
      const p = join(d, name);
      try {
        const st = lstatSync(p);
        if (st.isDirectory()) stack.push(p);
        else total += st.blocks * 512;
      } catch {
        // vanished while walking: a live builder writes as we count
      }
    }
  }
  return total;
}

export function plainVolumeManager(deps: { root: string }): VolumeManager {
  const pathOf = (ref: VolumeRef) => join(deps.root, volumeName(ref));
  const mounted = (ref: VolumeRef): MountedVolume => ({
    id: volumeName(ref),
    path: pathOf(ref),
    encryption: "none",
    sizeBytes: null,
  });
  const erase = (ref: VolumeRef) => {
    const p = pathOf(ref);
    if (!existsSync(p)) return;
    // Rename first so a crash halfway never leaves a half-deleted cache under the live name.
    const doomed = `${p}.deleting-${Date.now()}`;
    renameSync(p, doomed);
    rmSync(doomed, { recursive: true, force: true });
  };
  return {
    encryption: "none",
    async ensure(ref) {
      mkdirSync(pathOf(ref), { recursive: true, mode: 0o700 });
      return mounted(ref);
    },
    async close() {},
    async grow(ref) {
      return mounted(ref);
    },
    async reset(ref) {
      erase(ref);
    },
    async delete(ref) {
      erase(ref);
    },
    async usage(ref): Promise<VolumeUsage | null> {
      const p = pathOf(ref);
      if (!existsSync(p)) return null;
      return { usedBytes: diskUsage(p), sizeBytes: null };
    },
  };
}
