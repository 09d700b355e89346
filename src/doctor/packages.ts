/**
 * @module doctor/packages
 * The Debian packages behind the programs `slipway doctor` checks, and how much serve needs
 * each: "depends" when a default setting cannot work without it (builders, their network
 * policy, encrypted caches), "recommends" when only an optional capability is off without it.
 * The .deb's Depends and Recommends are generated from this list, and the package test holds
 * it against every `apt-get install` fix the checks print, so the two cannot drift.
 */
export interface HostPackage {
  /** Alternatives, the first preferred (`docker.io | docker-ce`). */
  packages: string[];
  need: "depends" | "recommends" | "suggests";
  /** What doctor (or the code it calls) says is off without it. */
  why: string;
}

export const HOST_PACKAGES: HostPackage[] = [
  { packages: ["docker.io", "docker-ce"], need: "depends", why: "builders are Docker containers (check: docker)" },
  {
    packages: ["iptables"],
    need: "depends",
    why: "the builder network policy and egress rules (checks: iptables, builders:network-policy)",
  },
  {
    packages: ["ipset"],
    need: "depends",
    why: "the address lists of those rules (checks: ipset, builders:network-policy)",
  },
  {
    packages: ["cryptsetup-bin"],
    need: "depends",
    why: "LUKS2 cache volumes, the default (checks: cryptsetup, dm-crypt)",
  },
  { packages: ["ca-certificates"], need: "depends", why: "TLS to CI OIDC issuers and package mirrors" },
  { packages: ["e2fsprogs"], need: "depends", why: "mkfs.ext4 and resize2fs for cache volumes (ext4, the default)" },
  { packages: ["mount"], need: "depends", why: "losetup, mount and umount for cache volumes" },
  { packages: ["procps"], need: "depends", why: "sysctl, read by the egress agent serve runs for local runner hosts" },
  {
    packages: ["qemu-user-static"],
    need: "recommends",
    why: "emulated builds for the other platform (check: emulation)",
  },
  { packages: ["debootstrap"], need: "recommends", why: "`slipway builder-image build` (check: builder-image)" },
  { packages: ["docker-registry"], need: "recommends", why: "saved builds, depot pull (check: registry)" },
  { packages: ["xfsprogs"], need: "suggests", why: 'volumes.filesystem = "xfs"' },
  { packages: ["lvm2"], need: "suggests", why: 'volumes.backend = "lvm"' },
];

/** A control field's value for one need: `a | b, c`. */
export function controlField(need: HostPackage["need"]): string {
  return HOST_PACKAGES.filter((p) => p.need === need)
    .map((p) => p.packages.join(" | "))
    .join(", ");
}
