/**
 * @module volumes/service
 * Picks the volume backend from configuration and what the host can do, once at start:
 * - `volumes.encryption = "luks"` (default) on a host with dm-crypt: LUKS2 volumes.
 * - `"luks"` on a host without dm-crypt: a manager that refuses every build with an explanation
 *   (never a silent fallback to plain disk).
 * - `"none"`, set explicitly: plain directories, reported as `encryption: none` everywhere.
 * Also the /readyz and doctor findings that say which of these holds and why.
 */
import type { Database } from "bun:sqlite";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import { PreconditionError } from "../errors.ts";
import type { HealthCheck } from "../health/registry.ts";
import { run as hostRun } from "../host/run.ts";
import type { Logger } from "../log/logger.ts";
import type { Sealer } from "../secrets/index.ts";
import type { Runner } from "./cryptsetup.ts";
import { detectDmCrypt, type DmCryptSupport } from "./detect.ts";
import { luksVolumeManager, type LuksVolumeManager, type ReconcileReport, type SystemView } from "./luks.ts";
import { plainVolumeManager } from "./plain.ts";
import type { VolumeEncryption, VolumeManager, VolumeRef } from "./types.ts";

export type VolumesConfig = Config["volumes"];

/** Builds cannot get a cache volume: encryption is required but this host cannot provide it. */
export class VolumesUnavailableError extends PreconditionError {
  override name = "VolumesUnavailableError";
}

export interface VolumesStatus {
  /** What volumes this appliance hands out. */
  encryption: VolumeEncryption;
  /** False when builds are refused (luks required, dm-crypt missing). */
  available: boolean;
  /** One line for logs, doctor and /readyz. */
  message: string;
}

export interface ConfiguredVolumes {
  manager: VolumeManager;
  status: VolumesStatus;
  /** The LUKS manager when in use (key rotation, listing); null otherwise. */
  luks: LuksVolumeManager | null;
  /** Start-up reconcile of dm devices and mounts (a no-op for plain/refused volumes). */
  reconcile(needed: VolumeRef[]): Promise<ReconcileReport | null>;
  healthCheck: HealthCheck;
}

export interface CreateVolumesOptions {
  config: VolumesConfig;
  db: Database;
  sealer: Sealer;
  dataDir: string;
  log: Logger;
  run?: Runner;
  /** Detected by default; tests may pass a verdict. */
  support?: DmCryptSupport;
  system?: SystemView;
}

export function volumesDir(config: VolumesConfig, dataDir: string): string {
  return config.dir ?? join(dataDir, "volumes");
}

export function unavailableMessage(reason: string): string {
  return `encrypted cache volumes are unavailable on this host: ${reason}. Builds are refused until this is fixed: use a kernel with dm-crypt (modprobe dm_crypt), or set volumes.encryption = "none" to accept unencrypted build caches`;
}

/** A manager for hosts that cannot provide the required encryption: refuses, never falls back. */
export function refusingVolumeManager(reason: string): VolumeManager {
  const refuse = async (): Promise<never> => {
    throw new VolumesUnavailableError(unavailableMessage(reason), { setting: "volumes.encryption", value: "luks" });
  };
  return {
    encryption: "luks2",
    ensure: refuse,
    grow: refuse,
    reset: refuse,
    delete: refuse,
    async close() {},
    async usage() {
      return null;
    },
  };
}

export function statusFor(config: VolumesConfig, support: DmCryptSupport): VolumesStatus {
  if (config.encryption === "none") {
    return {
      encryption: "none",
      available: true,
      message: 'cache volumes are NOT encrypted (volumes.encryption = "none"): build caches sit on plain disk',
    };
  }
  if (!support.usable) return { encryption: "luks2", available: false, message: unavailableMessage(support.reason) };
  return {
    encryption: "luks2",
    available: true,
    message: `cache volumes are LUKS2-encrypted (${config.backend === "lvm" ? `LVM volume group ${config.volume_group}` : "sparse image files"}, ${config.filesystem}); ${support.reason}`,
  };
}

export function createVolumeManager(o: CreateVolumesOptions): ConfiguredVolumes {
  const dir = volumesDir(o.config, o.dataDir);
  const support =
    o.config.encryption === "none"
      ? { usable: false, reason: "not checked (encryption off)" }
      : (o.support ?? detectDmCrypt());
  const status = statusFor(o.config, support);
  const healthCheck: HealthCheck = {
    name: "volumes:encryption",
    run: () =>
      status.encryption === "luks2" && status.available
        ? { status: "pass", observedValue: "luks2", output: status.message }
        : {
            status: "warn",
            observedValue: status.encryption === "none" ? "none" : "unavailable",
            output: status.message,
          },
  };
  if (o.config.encryption === "none") {
    o.log.warn(status.message, { encryption: "none" });
    return {
      manager: plainVolumeManager({ root: join(dir, "plain") }),
      status,
      luks: null,
      reconcile: async () => null,
      healthCheck,
    };
  }
  if (!support.usable) {
    o.log.warn(status.message, { encryption: "luks2", available: false });
    return {
      manager: refusingVolumeManager(support.reason),
      status,
      luks: null,
      reconcile: async () => null,
      healthCheck,
    };
  }
  const luks = luksVolumeManager({
    db: o.db,
    sealer: o.sealer,
    run: o.run ?? hostRun,
    log: o.log.child({ component: "volumes" }),
    root: dir,
    backend: o.config.backend === "lvm" ? { kind: "lvm", volumeGroup: o.config.volume_group! } : { kind: "file" },
    filesystem: o.config.filesystem,
    discards: o.config.discards,
    system: o.system,
  });
  o.log.info(status.message, { encryption: "luks2" });
  return { manager: luks, status, luks, reconcile: (needed) => luks.reconcile(needed), healthCheck };
}
