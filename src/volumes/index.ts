/**
 * @module volumes
 * Cache volumes for builders, one per (project, platform).
 */
export type { MountedVolume, VolumeEncryption, VolumeManager, VolumeRef, VolumeUsage } from "./types.ts";
export { plainVolumeManager, volumeName } from "./plain.ts";
