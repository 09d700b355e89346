/**
 * @module volumes/doctor
 * `slipway doctor`'s verdict on cache volumes: encrypted, refused (and why), or explicitly plain.
 */
import type { Finding } from "../health/finding.ts";
import { detectDmCrypt, type DmCryptSupport } from "./detect.ts";
import { statusFor, type VolumesConfig } from "./service.ts";

export type VolumesFinding = Finding; // the doctor's own shape

export function checkVolumes(config: VolumesConfig, support: DmCryptSupport = detectDmCrypt()): VolumesFinding {
  const s = statusFor(config, support);
  if (s.encryption === "none") {
    return {
      check: "volumes",
      status: "warn",
      message: s.message,
      fix: 'on a host with dm-crypt, remove volumes.encryption = "none" to encrypt build caches',
    };
  }
  if (!s.available) {
    return {
      check: "volumes",
      status: "warn",
      message: s.message,
      fix: 'use a kernel with device-mapper and dm-crypt (modprobe dm_crypt), or set volumes.encryption = "none" explicitly',
    };
  }
  return { check: "volumes", status: "ok", message: s.message };
}
