/**
 * @module volumes/detect
 * Can this host open LUKS volumes? dm-crypt needs device-mapper's control node and the crypt
 * target, either loaded, built in, or loadable from the running kernel's modules; and the
 * cryptsetup program. Laptops, some VMs and CI kernels lack device-mapper altogether.
 */
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { which } from "../host/run.ts";

export interface DmCryptSupport {
  usable: boolean;
  /** One sentence: what is there, or what is missing. */
  reason: string;
}

export interface DetectPaths {
  /** Root of the file system to look at (tests point it at a fake tree). */
  root?: string;
  kernelRelease?: string;
  cryptsetup?: string | null;
}

export function detectDmCrypt(p: DetectPaths = {}): DmCryptSupport {
  const root = p.root ?? "";
  const rel = p.kernelRelease ?? release();
  const cryptsetupPath = p.cryptsetup === undefined ? which("cryptsetup") : p.cryptsetup;
  const read = (f: string) => {
    try {
      return readFileSync(root + f, "utf8");
    } catch {
      return "";
    }
  };
  if (!cryptsetupPath) return { usable: false, reason: "cryptsetup is not installed (apt-get install cryptsetup-bin)" };
  if (!read("/proc/misc").includes("device-mapper") && !existsSync(`${root}/sys/module/dm_mod`)) {
    return {
      usable: false,
      reason: `the running kernel (${rel}) has no device-mapper, so dm-crypt volumes cannot be opened`,
    };
  }
  if (!existsSync(`${root}/dev/mapper/control`))
    return { usable: false, reason: "device-mapper's control node /dev/mapper/control is missing" };
  const crypt =
    existsSync(`${root}/sys/module/dm_crypt`) ||
    /\bcrypt\b/.test(read("/proc/device-mapper-targets")) ||
    read(`/lib/modules/${rel}/modules.builtin`).includes("dm-crypt.ko") ||
    /\/dm-crypt\.ko(\.[a-z]+)?:/.test(read(`/lib/modules/${rel}/modules.dep`));
  if (!crypt)
    return {
      usable: false,
      reason: `the kernel (${rel}) has device-mapper but no dm-crypt target (neither loaded nor loadable)`,
    };
  return { usable: true, reason: "device-mapper and dm-crypt are available" };
}
