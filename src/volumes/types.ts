/**
 * @module volumes/types
 * What the builder service needs from a cache volume, whatever keeps it: one volume per
 * (project, platform), mounted at a host path the builder's state directory is bound to.
 * Backends: `plain` (a directory, `encryption: none`) and LUKS2 (see the encrypted-volume work).
 */

export type VolumeEncryption = "luks2" | "none";

/** Which volume: a project's cache for one platform (e.g. `linux/amd64`). */
export interface VolumeRef {
  projectId: string;
  platform: string;
}

export interface MountedVolume {
  /** Stable id of this volume (changes when a reset recreates it). */
  id: string;
  /** Host directory where the filesystem is mounted; the builder's state dir binds to it. */
  path: string;
  encryption: VolumeEncryption;
  /** Capacity in bytes; null where the backend sets none (plain directories). */
  sizeBytes: number | null;
}

export interface VolumeUsage {
  usedBytes: number;
  sizeBytes: number | null;
}

export interface VolumeManager {
  readonly encryption: VolumeEncryption;
  /** Creates the volume if missing, opens and mounts it if needed; idempotent. */
  ensure(ref: VolumeRef, sizeBytes: number): Promise<MountedVolume>;
  /** Unmounts and closes (keeps the data); a no-op when not open. */
  close(ref: VolumeRef): Promise<void>;
  /** Grows to `sizeBytes` (never shrinks), data intact. */
  grow(ref: VolumeRef, sizeBytes: number): Promise<MountedVolume>;
  /** Erases everything: the next ensure() returns an empty volume. The builder must be stopped. */
  reset(ref: VolumeRef): Promise<void>;
  /** Erases and removes the volume for good. */
  delete(ref: VolumeRef): Promise<void>;
  /** Bytes used, or null when the volume does not exist. */
  usage(ref: VolumeRef): Promise<VolumeUsage | null>;
}
