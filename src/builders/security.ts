/**
 * @module builders/security
 * The two security profiles a builder container can get. BuildKit needs to create namespaces,
 * mount filesystems and run its own containers, so it runs `privileged` by default. Some engines
 * refuse that (ours: CAP_SYS_RESOURCE is outside the bounding set, and runc fails with "unable to
 * apply caps"); the fallback grants what BuildKit needs without the capabilities the engine cannot
 * give. Which profile a builder got is recorded on the builder and its container's labels.
 */
export type SecurityProfileName = "privileged" | "fallback";

export const PRIVILEGED_PROFILE = { Privileged: true } as const;

export const FALLBACK_PROFILE = {
  Privileged: false,
  CapAdd: ["ALL"],
  CapDrop: ["SYS_RESOURCE"],
  SecurityOpt: ["seccomp=unconfined", "apparmor=unconfined"],
  // `--security-opt systempaths=unconfined`, which dockerode does not translate: no masked or
  // read-only /proc and /sys paths, so BuildKit can mount its own proc for build steps.
  MaskedPaths: [] as string[],
  ReadonlyPaths: [] as string[],
};

/** True when a container start failed because the engine cannot grant privileged mode. */
export function isPrivilegeRefusal(e: unknown): boolean {
  const msg = String((e as Error)?.message ?? e);
  return /unable to apply caps|operation not permitted|privileged mode is (disabled|not allowed)/i.test(msg);
}
