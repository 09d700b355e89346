/**
 * @module builders/image/recipe
 * What the `dockerd` builder image is made of: the Debian packages, the entrypoint that turns a
 * container into a nested dockerd listening only on a unix socket in a bind-mounted directory,
 * the image's labels, and a content hash of all of it (so a cached image can be recognised as
 * built from this exact recipe). The paths here are the contract with the builder service.
 */
import { createHash } from "node:crypto";

/** Directory inside the builder where its socket lives; the manager bind-mounts a host dir here. */
export const BUILDER_SOCKET_DIR = "/run/slipway";
/** The dockerd runtime's socket name inside BUILDER_SOCKET_DIR. */
export const DOCKERD_SOCKET_NAME = "dockerd.sock";
/** dockerd's data root inside the builder: the cache volume is mounted here. */
export const DOCKERD_DATA_ROOT = "/var/lib/docker";
/** The entrypoint script's path inside the image. */
export const DOCKERD_ENTRYPOINT = "/usr/local/bin/slipway-dockerd-entrypoint";

export const DEFAULT_DOCKERD_IMAGE = "slipway/builder-dockerd:trixie";
export const DEFAULT_BUILDKITD_IMAGE = "moby/buildkit:buildx-stable-1";

export const SUITES = ["bookworm", "trixie"] as const;
export type Suite = (typeof SUITES)[number];

/** Image labels (the manager copies runtime and digest onto its containers' own labels). */
export const LABEL_RUNTIME = "io.slipway.runtime";
export const LABEL_SUITE = "io.slipway.suite";
export const LABEL_BUILT = "io.slipway.built";
export const LABEL_RECIPE = "io.slipway.recipe";
export const LABEL_MIRROR = "io.slipway.mirror";

/**
 * Packages on top of debootstrap's minbase. docker.io brings dockerd (with its embedded BuildKit),
 * and depends on containerd, runc, iptables and tini (our PID 1). ca-certificates: pulls from
 * registries over TLS; git: BuildKit's git contexts run the git binary; pigz: parallel
 * decompression of layers; mount/util-linux: the entrypoint's remounts.
 */
export const PACKAGES = [
  "docker.io",
  "containerd",
  "runc",
  "iptables",
  "tini",
  "ca-certificates",
  "git",
  "pigz",
  "xz-utils",
  "mount",
  "util-linux",
] as const;

/**
 * The entrypoint (POSIX sh, runs inside the image). A non-privileged container gets /sys/fs/cgroup
 * read-only and, on cgroup v2, a root cgroup with processes in it; both stop a nested dockerd.
 * It remounts the cgroup hierarchies read-write, moves itself into a child cgroup (v2) so the
 * controllers can be delegated, removes a previous run's pid files (a restarted container keeps
 * its /run), then execs dockerd listening only on $SLIPWAY_SOCKET_DIR/dockerd.sock. Extra
 * arguments (the container's Cmd) are appended to dockerd's.
 *
 * What keeps a cold start short (measured with dockerd 26 on trixie: ~2.5 s → ~0.5 s from
 * container start to BuildKit answering). containerd is started here, and dockerd beside it
 * with its address: a dockerd that starts its own containerd dials it before it listens, and
 * gRPC's reconnect backoff then sleeps about a second. dockerd's iptables set-up (~100
 * iptables runs, 0.4-0.9 s) is replaced by the one rule RUN steps need: they leave through the
 * default bridge, masqueraded (the FORWARD chain of a fresh network namespace accepts). The
 * cgroup remounts run side by side, and nothing else waits on the way to dockerd.
 *
 * Environment it reads: SLIPWAY_SOCKET_GID (numeric group owning the socket, default 0: a
 * non-root serve needs its own group here), SLIPWAY_DOCKERD_CONFIG_JSON (written to /etc/docker/daemon.json: GC policy etc.),
 * SLIPWAY_DOCKERD_STORAGE_DRIVER (force one; default: dockerd picks overlay2 where the data root
 * allows it, else vfs), SLIPWAY_DOCKERD_LOG_LEVEL (default warn).
 */
export const ENTRYPOINT_SCRIPT = `#!/bin/sh
# Slipway builder (dockerd runtime): prepare the container for a nested dockerd, then run it.
set -eu
SOCKET_DIR=${BUILDER_SOCKET_DIR}
SOCKET=\${SOCKET_DIR}/${DOCKERD_SOCKET_NAME}
DATA_ROOT=${DOCKERD_DATA_ROOT}
say() { echo "slipway-entrypoint: $*" >&2; }

# cgroups: mounted read-only in a container that is not --privileged. One remount per hierarchy
# (a dozen on cgroup v1), run side by side: one after another they took ~0.1 s of the start.
remounts=
while read -r _dev mnt fstype opts _rest; do
  case "$fstype" in cgroup|cgroup2) ;; *) continue ;; esac
  # A bind remount changes only this mount's flag, never the hierarchy's (shared with the host).
  case ",$opts," in *,ro,*) { mount -o remount,bind,rw "$mnt" 2>/dev/null || say "cannot remount $mnt read-write"; } &
    remounts="$remounts $!" ;; esac
done </proc/self/mounts
[ -z "$remounts" ] || wait $remounts
# cgroup v2: no process may stay in a cgroup that delegates controllers.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || say "cannot delegate cgroup v2 controllers"
fi
mount --make-rshared / 2>/dev/null || :

# A restarted container keeps its /run: a stale pid file would stop dockerd.
rm -rf /run/docker /run/docker.pid /run/containerd
mkdir -p "$SOCKET_DIR" "$DATA_ROOT"

# containerd where dockerd would put its own (its state on the cache volume), started first.
# dockerd is started at once, not once containerd listens: the two Go programs' start-up
# (~0.1 s and ~0.2 s here) then overlap. containerd's client dials a socket file that does not
# exist yet again every 10 ms, so dockerd connects as soon as containerd listens; a refused
# connection (a socket left listening by nobody) would cost gRPC's 1 s backoff, hence the rm of
# /run/docker above. If containerd dies at start, dockerd waits on it and the builder service's
# ready timeout fails the start with the container's last log lines (containerd's error).
CONTAINERD_SOCKET=/run/docker/containerd/containerd.sock
mkdir -p /run/docker/containerd /etc/containerd
printf '%s\\n' 'version = 2' "root = \\"$DATA_ROOT/containerd/daemon\\"" 'state = "/run/docker/containerd/daemon"' \\
  'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \\"$CONTAINERD_SOCKET\\"" \\
  >/etc/containerd/slipway.toml
containerd --config /etc/containerd/slipway.toml --log-level "\${SLIPWAY_DOCKERD_LOG_LEVEL:-warn}" &

if [ -n "\${SLIPWAY_DOCKERD_CONFIG_JSON:-}" ]; then
  mkdir -p /etc/docker
  printf '%s\\n' "$SLIPWAY_DOCKERD_CONFIG_JSON" >/etc/docker/daemon.json
else
  rm -f /etc/docker/daemon.json
fi
# RUN steps leave through the default bridge: masquerade what goes out by another interface.
# This and the note below run beside dockerd's start (orphaned, so tini reaps them): RUN steps
# come long after, and each costs a fork or two on the way to dockerd otherwise.
( { iptables -t nat -C POSTROUTING ! -o docker0 -j MASQUERADE 2>/dev/null ||
  iptables -t nat -A POSTROUTING ! -o docker0 -j MASQUERADE || say "cannot add the masquerading rule: RUN steps have no network"; } & )
( say "data root $DATA_ROOT is on $(stat -f -c %T "$DATA_ROOT"); socket $SOCKET" & )

set -- --host="unix://$SOCKET" --data-root="$DATA_ROOT" --exec-root=/run/docker --pidfile=/run/docker.pid \\
  --containerd="$CONTAINERD_SOCKET" --iptables=false \\
  --group="\${SLIPWAY_SOCKET_GID:-0}" --log-level="\${SLIPWAY_DOCKERD_LOG_LEVEL:-warn}" "$@"
if [ -n "\${SLIPWAY_DOCKERD_STORAGE_DRIVER:-}" ]; then set -- --storage-driver="$SLIPWAY_DOCKERD_STORAGE_DRIVER" "$@"; fi
exec /usr/sbin/dockerd "$@"
`;

/** The image's Entrypoint and Cmd: tini reaps zombies and forwards signals to dockerd. */
export const IMAGE_ENTRYPOINT = ["/usr/bin/tini", "--", DOCKERD_ENTRYPOINT] as const;
export const IMAGE_CMD: readonly string[] = [];

/** Bumped when anything outside the texts above changes how the image is made. */
const RECIPE_VERSION = 1;

/** A content hash of the recipe for one suite: equal hashes mean an equivalent image. */
export function recipeHash(suite: Suite): string {
  const h = createHash("sha256");
  h.update(
    JSON.stringify({
      v: RECIPE_VERSION,
      suite,
      packages: PACKAGES,
      entrypoint: ENTRYPOINT_SCRIPT,
      cmd: [IMAGE_ENTRYPOINT, IMAGE_CMD],
    }),
  );
  return h.digest("hex").slice(0, 32);
}

/** `docker import` changes (Dockerfile instructions) giving the image its entrypoint, env and labels. */
export function importChanges(labels: Record<string, string>): string[] {
  return [
    `ENTRYPOINT ${JSON.stringify(IMAGE_ENTRYPOINT)}`,
    `CMD ${JSON.stringify(IMAGE_CMD)}`,
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `VOLUME ["${DOCKERD_DATA_ROOT}"]`,
    ...Object.entries(labels).map(([k, v]) => `LABEL ${k}=${JSON.stringify(v)}`),
  ];
}
