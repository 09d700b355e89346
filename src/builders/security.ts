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

/**
 * The fallback's seccomp filter: everything BuildKit and runc use is allowed (namespaces, mount,
 * pivot_root, bpf for cgroup v2 device filters), and what no build needs and breakouts or host
 * tampering do is refused. Measured on dockerd 20.10 with Debian trixie's BuildKit: Docker's
 * default profile fails every RUN step ("unable to join session keyring: unable to create session
 * key: operation not permitted"), because it refuses keyctl with EPERM while runc goes on only
 * when the kernel says ENOSYS; so the keyring calls answer ENOSYS here. 32-bit entry points are
 * filtered too (sub-architectures), or `int 0x80` would walk around the list.
 */
export const BUILDER_SECCOMP = {
  defaultAction: "SCMP_ACT_ALLOW",
  archMap: [
    { architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] },
    { architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"] },
  ],
  syscalls: [
    {
      names: [
        // kernel code and the machine itself
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "iopl",
        "ioperm",
        "swapon",
        "swapoff",
        "acct",
        "syslog",
        "quotactl",
        "nfsservctl",
        // the host's clock
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "stime",
        // file handles open any inode of a mounted filesystem (the "shocker" breakout)
        "open_by_handle_at",
        // kernel exploitation helpers and profiling of the host
        "userfaultfd",
        "perf_event_open",
        "lookup_dcookie",
      ],
      action: "SCMP_ACT_ERRNO",
      errnoRet: 1,
    },
    { names: ["keyctl", "add_key", "request_key"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
  ],
};

export const FALLBACK_PROFILE = {
  Privileged: false,
  CapAdd: ["ALL"],
  CapDrop: ["SYS_RESOURCE"],
  SecurityOpt: [`seccomp=${JSON.stringify(BUILDER_SECCOMP)}`, "apparmor=unconfined"],
  // Docker's masked paths are kept (MaskedPaths left out: the engine's defaults). Its read-only
  // paths too, except /proc/sys/net: the builder's dockerd configures each RUN step's network
  // namespace there (measured: with all of /proc/sys read-only every RUN fails with "failed to
  // disable IPv6 on container's interface eth0"). Those sysctls are per network namespace; the
  // host-wide ones (kernel, vm, fs, ...) stay read-only.
  ReadonlyPaths: [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sysrq-trigger",
    "/proc/sys/kernel",
    "/proc/sys/vm",
    "/proc/sys/fs",
    "/proc/sys/dev",
    "/proc/sys/debug",
    "/proc/sys/abi",
    "/proc/sys/user",
  ],
};

/** True when a container start failed because the engine cannot grant privileged mode. */
export function isPrivilegeRefusal(e: unknown): boolean {
  const msg = String((e as Error)?.message ?? e);
  return /unable to apply caps|operation not permitted|privileged mode is (disabled|not allowed)/i.test(msg);
}
