/**
 * @module volumes
 * Cache volumes for builders, one per (project, platform): LUKS2-encrypted (default), or plain
 * directories where the operator explicitly set `volumes.encryption = "none"`.
 * The appliance calls createVolumeManager() once at start, registers its healthCheck, and runs
 * reconcile() with the volumes running builders need.
 */
export type { MountedVolume, VolumeEncryption, VolumeManager, VolumeRef, VolumeUsage } from "./types.ts";
export { plainVolumeManager, volumeName } from "./plain.ts";
export { luksVolumeManager, type LuksVolumeManager, type ReconcileReport } from "./luks.ts";
export { detectDmCrypt, type DmCryptSupport } from "./detect.ts";
export { rewrapVolumeKeys } from "./keys.ts";
export {
  createVolumeManager,
  refusingVolumeManager,
  statusFor,
  volumesDir,
  VolumesUnavailableError,
  type ConfiguredVolumes,
  type VolumesConfig,
  type VolumesStatus,
} from "./service.ts";
export { checkVolumes } from "./doctor.ts";
