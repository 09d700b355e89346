/**
 * @module builders/emulation
 * Whether this host can run another architecture's binaries in builder containers: the kernel's
 * binfmt_misc has the qemu-user handler for that platform registered and enabled, with the
 * fix-binary flag (F). F makes the kernel open the interpreter when the handler is registered,
 * so it runs inside containers that do not have it; without F the exec fails in the builder.
 * Read-only: registering handlers is the operator's (qemu-user-static does it).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { qemuBinfmtName } from "./runtimes.ts";

export const BINFMT_DIR = "/proc/sys/fs/binfmt_misc";

export interface BinfmtHandler {
  /** The handler's name under the binfmt_misc directory, e.g. `qemu-aarch64`. */
  name: string;
  registered: boolean;
  enabled: boolean;
  /** Fix-binary: the interpreter is opened at registration, so it works in any mount namespace. */
  fixBinary: boolean;
  interpreter: string | null;
}

/** A platform's qemu-user handler as the kernel reports it; null for a platform qemu has none for. */
export function binfmtHandler(platform: string, dir = BINFMT_DIR): BinfmtHandler | null {
  const name = qemuBinfmtName(platform);
  if (!name) return null;
  const file = join(dir, name);
  if (!existsSync(file)) return { name, registered: false, enabled: false, fixBinary: false, interpreter: null };
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return { name, registered: false, enabled: false, fixBinary: false, interpreter: null };
  }
  const field = (k: string) =>
    text
      .split("\n")
      .find((l) => l.startsWith(`${k} `))
      ?.slice(k.length + 1)
      .trim() ?? null;
  return {
    name,
    registered: true,
    enabled: text.split("\n")[0]?.trim() === "enabled",
    fixBinary: (field("flags:") ?? "").includes("F"),
    interpreter: field("interpreter"),
  };
}

/** Whether binfmt_misc itself is mounted and on (its `status` file says `enabled`). */
export function binfmtMounted(dir = BINFMT_DIR): { mounted: boolean; enabled: boolean } {
  const status = join(dir, "status");
  if (!existsSync(status)) return { mounted: false, enabled: false };
  try {
    return { mounted: true, enabled: readFileSync(status, "utf8").trim() === "enabled" };
  } catch {
    return { mounted: true, enabled: false };
  }
}

const INSTALL = "apt-get install qemu-user-static";

/**
 * Why `platform` cannot be emulated here (a sentence that names the fix), or null when it can:
 * binfmt_misc mounted and enabled, the handler registered, enabled and fix-binary.
 */
export function emulationProblem(platform: string, dir = BINFMT_DIR): string | null {
  const h = binfmtHandler(platform, dir);
  if (!h) return `no QEMU user emulator exists for ${platform}`;
  const fs = binfmtMounted(dir);
  if (!fs.mounted)
    return `binfmt_misc is not mounted at ${dir} (mount -t binfmt_misc binfmt_misc ${dir}), so ${platform} binaries cannot run; then ${INSTALL} registers its handlers`;
  if (!fs.enabled)
    return `binfmt_misc is disabled (${join(dir, "status")} is not "enabled"; echo 1 > ${join(dir, "status")})`;
  if (!h.registered)
    return `the ${h.name} binfmt handler is not registered, so ${platform} binaries cannot run on this host; ${INSTALL} (or update-binfmts --enable ${h.name}) registers it`;
  if (!h.enabled)
    return `the ${h.name} binfmt handler is registered but disabled; update-binfmts --enable ${h.name} (or echo 1 > ${join(dir, h.name)})`;
  if (!h.fixBinary)
    return `the ${h.name} binfmt handler lacks the fix-binary flag (F), so its interpreter ${h.interpreter ?? ""} cannot be found inside builder containers; register it with the F flag, as Debian's qemu-user-static does`;
  return null;
}

export interface EmulationStatus {
  platform: string;
  /** builders.allow_emulation. */
  allowed: boolean;
  /** Why the handler cannot serve, or null when it can. */
  problem: string | null;
  handler: BinfmtHandler | null;
}

/** What doctor and /readyz say about emulating `platform` on this host. */
export function emulationStatus(platform: string, allowed: boolean, dir = BINFMT_DIR): EmulationStatus {
  return { platform, allowed, problem: emulationProblem(platform, dir), handler: binfmtHandler(platform, dir) };
}

/** The one-line summary doctor and /readyz print. */
export function describeEmulation(s: EmulationStatus): { status: "ok" | "warn"; message: string; fix?: string } {
  const available = !s.problem;
  const what = available
    ? `${s.platform} emulation is available (${s.handler!.name} registered, enabled, flags F)`
    : `${s.platform} emulation is unavailable: ${s.problem}`;
  if (s.allowed && available)
    return { status: "ok", message: `${what}, and enabled (builders.allow_emulation = true)` };
  if (s.allowed)
    return {
      status: "warn",
      message: `${what}; builders.allow_emulation is true, so ${s.platform} builds will be refused until it is fixed`,
      fix: INSTALL,
    };
  return {
    status: "ok",
    message: `${what}; not enabled (builders.allow_emulation = false: ${s.platform} builds are refused)`,
  };
}
