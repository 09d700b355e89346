/**
 * @module test/system/minimal-deb
 * A minimal .deb of a given `slipway` binary, made with dpkg-deb: /usr/bin/slipway, the unit
 * files and config of the checkout it is built from, and maintainer scripts that enable and start
 * the service (postinst) and stop it (prerm). The system test uses it for the *previous* version
 * (a commit from before the packaging existed, whose tree has no packaging script), so an upgrade
 * from it to the real package is exercised the way a site that installed the binary by hand and
 * then adopts the package would see it.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Bump when what buildMinimalDeb writes changes (cached packages are keyed by it). */
export const MINIMAL_DEB_REVISION = 1;

export interface MinimalDebInput {
  /** The compiled binary (linux x64). */
  binary: string;
  /** A checkout holding packaging/systemd/slipway.service and packaging/slipway.toml. */
  tree: string;
  version: string;
  /** Where the .deb is written (a directory). */
  outDir: string;
}

const CONTROL = (version: string) => `Package: slipway
Version: ${version}
Architecture: amd64
Maintainer: Slipway maintainers <slipway@example.invalid>
Depends: docker.io | docker-ce, iptables, ipset, cryptsetup-bin
Section: admin
Priority: optional
Description: self-hosted build appliance
 Minimal package of one binary, made by the system test for upgrade testing.
`;

const POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable slipway.service
  systemctl restart slipway.service
fi
`;

/** Stops on remove only: on upgrade the new package's postinst restarts it (as debhelper's do). */
const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop slipway.service || true
  systemctl disable slipway.service || true
fi
`;

/** Writes `<outDir>/slipway_<version>_amd64.deb` and returns its path. */
export function buildMinimalDeb(input: MinimalDebInput): string {
  const root = mkdtempSync(join(tmpdir(), "slipway-mindeb-"));
  chmodSync(root, 0o755); // the archive's ./ (mkdtemp makes it 0700)
  try {
    const put = (rel: string, from: string, mode: number) => {
      const to = join(root, rel);
      mkdirSync(join(to, ".."), { recursive: true });
      copyFileSync(from, to);
      chmodSync(to, mode);
    };
    const write = (rel: string, text: string, mode: number) => {
      const to = join(root, rel);
      mkdirSync(join(to, ".."), { recursive: true });
      writeFileSync(to, text);
      chmodSync(to, mode);
    };
    put("usr/bin/slipway", input.binary, 0o755);
    put("lib/systemd/system/slipway.service", join(input.tree, "packaging/systemd/slipway.service"), 0o644);
    put("etc/slipway/slipway.toml", join(input.tree, "packaging/slipway.toml"), 0o644);
    write("DEBIAN/control", CONTROL(input.version), 0o644);
    write("DEBIAN/conffiles", "/etc/slipway/slipway.toml\n", 0o644);
    write("DEBIAN/postinst", POSTINST, 0o755);
    write("DEBIAN/prerm", PRERM, 0o755);
    mkdirSync(input.outDir, { recursive: true });
    const out = join(input.outDir, `slipway_${input.version}_amd64.deb`);
    const r = Bun.spawnSync(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, out], {
      stdout: "pipe",
      stderr: "pipe",
    });
    if (r.exitCode !== 0) throw new Error(`dpkg-deb failed: ${r.stderr.toString()}`);
    return out;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
