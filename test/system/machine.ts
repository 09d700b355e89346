/**
 * @module test/system/machine
 * A Debian system with systemd as PID 1, as a container on the host's Docker engine.
 *
 * Why a container and not a VM under qemu TCG: systemd 252 boots as PID 1 in a container here in
 * about a second, where a TCG guest takes minutes to boot and install Docker; the engine refuses
 * `--privileged` (CAP_SYS_RESOURCE is outside the bounding set), so the container gets what the
 * builders get: every capability but SYS_RESOURCE, no seccomp or AppArmor profile, no masked or
 * read-only /proc paths; plus tmpfs /run, /run/lock and /tmp, a private cgroup namespace with an
 * empty tmpfs at /sys/fs/cgroup where systemd mounts its own hierarchies (cgroup v1 here: with the
 * host's tree bound instead, systemd would make its slices at the host's cgroup root),
 * `container=docker`, and SIGRTMIN+3 as the stop signal (systemd's halt).
 *
 * Docker inside: the system's docker.io package is installed (Depends, and its CLI) but its
 * daemon is masked; the host engine's socket is bound at /var/run/docker.sock, so builders run on
 * the host engine, nested once as everywhere else. Two consequences shape the test:
 * - Network: the install/upgrade/purge system uses the host's network namespace, because the
 *   builder egress policy (iptables chains, ipsets) must be applied where Docker's bridges live.
 *   So those chains and sets are the host's, and the before/after listing is of the host's.
 *   The offline system has no network at all (`--network none`).
 * - Paths: the engine resolves a builder's bind mounts (the data dir's builders/ and volumes/)
 *   on the host. The system's /var/lib is therefore an anonymous Docker volume (filled from the
 *   image, removed with the container, on the host's own filesystem: a builder's dockerd cannot
 *   put its overlay storage on the container's overlay), and the host path /var/lib/slipway is,
 *   for the test's duration, a symbolic link to that volume's slipway/ directory. The same path
 *   then names the same directory on both sides while the package still owns a plain directory
 *   it can create and purge. The test refuses to run where the host has its own /var/lib/slipway.
 */
import { lstatSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";

export interface ExecResult {
  code: number;
  out: string;
  err: string;
}

export interface Machine {
  name: string;
  id: string;
  /** Runs argv in the system as root; never throws on a non-zero exit. */
  exec(argv: string[], opts?: { stdin?: string; env?: Record<string, string> }): ExecResult;
  /** Runs a bash script in the system; throws with its output unless it exits 0. */
  sh(script: string, opts?: { env?: Record<string, string> }): string;
  /** Writes a file in the system (parents made). */
  write(path: string, text: string, mode?: string): void;
  /** The host directory behind the system's /var/lib (its anonymous volume). */
  hostVarLib(): string;
  /** Halts systemd (SIGRTMIN+3, so it removes its cgroups) and removes the container. */
  stop(): void;
}

export const HOST_DATA_LINK = "/var/lib/slipway";

function docker(argv: string[], stdin?: string): ExecResult {
  const r = Bun.spawnSync(["docker", ...argv], {
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** Why the host path the data dir needs is not free, or null. */
export function hostDataPathBusy(): string | null {
  try {
    const st = lstatSync(HOST_DATA_LINK);
    if (st.isSymbolicLink() && readlinkSync(HOST_DATA_LINK).includes("/volumes/")) return null; // a previous run's link (removed on start)
    return `this host has its own ${HOST_DATA_LINK}: the system test would shadow it`;
  } catch {
    return null;
  }
}

export interface MachineOptions {
  image: string;
  name: string;
  network: "host" | "none";
  /** host:container[:ro] */
  binds: string[];
  labels?: Record<string, string>;
}

/** Starts the system and waits until systemd reports it running (or degraded). */
export async function startMachine(o: MachineOptions): Promise<Machine> {
  const args = [
    "run",
    "-d",
    "--pull",
    "never",
    "--name",
    o.name,
    "--hostname",
    "slipway-system-test",
    "--add-host",
    "slipway-system-test:127.0.1.1",
    "-v",
    "/var/lib",
    "--network",
    o.network,
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--cgroupns",
    "private",
    "--tmpfs",
    "/sys/fs/cgroup",
    "--tmpfs",
    "/run:exec,mode=755",
    "--tmpfs",
    "/run/lock",
    "--tmpfs",
    "/tmp:exec,mode=1777",
    "-e",
    "container=docker",
    "--stop-signal",
    "SIGRTMIN+3",
    "--label",
    "io.slipway.test=system",
    ...Object.entries(o.labels ?? {}).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
    ...o.binds.flatMap((b) => ["-v", b]),
    o.image,
    "/sbin/init",
  ];
  const started = docker(args);
  if (started.code !== 0) throw new Error(`docker run failed: ${started.err}`);
  const id = started.out.trim();
  const m: Machine = {
    name: o.name,
    id,
    exec(argv, opts = {}) {
      const env = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
      return docker(["exec", ...(opts.stdin !== undefined ? ["-i"] : []), ...env, o.name, ...argv], opts.stdin);
    },
    sh(script, opts = {}) {
      const r = m.exec(["bash", "-euo", "pipefail", "-c", script], opts);
      if (r.code !== 0) throw new Error(`in the system: ${script}\nexited ${r.code}\n${r.out}${r.err}`);
      return r.out;
    },
    write(path, text, mode = "0644") {
      const r = m.exec(["sh", "-c", `mkdir -p "$(dirname "$1")" && cat >"$1" && chmod ${mode} "$1"`, "sh", path], {
        stdin: text,
      });
      if (r.code !== 0) throw new Error(`writing ${path} in the system: ${r.err}`);
    },
    hostVarLib() {
      const r = docker([
        "inspect",
        "-f",
        '{{range .Mounts}}{{if eq .Destination "/var/lib"}}{{.Source}}{{end}}{{end}}',
        o.name,
      ]);
      if (r.code !== 0 || !r.out.trim()) throw new Error(`no /var/lib volume in ${o.name}: ${r.err}`);
      return r.out.trim();
    },
    stop() {
      docker(["stop", "-t", "30", o.name]);
      docker(["rm", "-f", "-v", o.name]);
    },
  };
  const deadline = Date.now() + 60_000;
  let state = "";
  while (Date.now() < deadline) {
    state = m.exec(["systemctl", "is-system-running"]).out.trim();
    if (state === "running" || state === "degraded") return m;
    await Bun.sleep(250);
  }
  const failed = m.exec(["systemctl", "--failed", "--no-pager"]).out;
  const logs = docker(["logs", "--tail", "40", o.name]);
  m.stop();
  throw new Error(`systemd did not come up in ${o.name} (state '${state}'):\n${failed}\n${logs.out}${logs.err}`);
}

/** Makes HOST_DATA_LINK point at the system's /var/lib/slipway (see the module comment). */
export function linkHostDataPath(hostVarLib: string): void {
  unlinkHostDataPath();
  symlinkSync(join(hostVarLib, "slipway"), HOST_DATA_LINK);
}

export function unlinkHostDataPath(): void {
  try {
    if (lstatSync(HOST_DATA_LINK).isSymbolicLink()) rmSync(HOST_DATA_LINK);
  } catch {
    // absent
  }
}
