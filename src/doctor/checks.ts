/**
 * @module doctor/checks
 * What `slipway doctor` looks at on this host, each check one finding with a fix. Checks never
 * change anything. `fail` means `serve` cannot start; `warn` means a capability will be off.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { formatListenAddress, parseListenAddress, type LoadedConfig } from "../config/index.ts";
import { run, which } from "../host/run.ts";
import { dataDirProblem, probePort } from "../appliance/preflight.ts";
import { locateMasterKey } from "../secrets/index.ts";
import type { Finding } from "../health/finding.ts";
import { checkVolumes, detectDmCrypt, type VolumesConfig } from "../volumes/index.ts";
import Docker from "dockerode";
import { builderImageServiceFactory, configuredImage, doctorBuilderImageCheck } from "../builders/image/index.ts";
import { silentLogger } from "../log/logger.ts";
import { Database } from "bun:sqlite";
import { DB_FILE } from "../appliance/state.ts";
import { readApplianceId as applianceIdOf } from "../appliance/identity-row.ts";
import {
  BINFMT_DIR,
  builderNetworkPolicyFactory,
  policyNames,
  BUILDER_LABELS,
  builderSettingsKey,
  describeEmulation,
  describeOutdated,
  emulationStatus,
  imageDifference,
  type OutdatedBuilder,
} from "../builders/index.ts";

export interface DoctorInput {
  loaded: LoadedConfig;
  env: Record<string, string | undefined>;
}

/** The Docker Engine API socket: DOCKER_HOST when it is unix://, else the standard path. */
export function dockerSocketPath(env: Record<string, string | undefined>): string {
  const host = env.DOCKER_HOST;
  if (host?.startsWith("unix://")) return host.slice("unix://".length);
  return "/var/run/docker.sock";
}

export async function checkDocker(env: Record<string, string | undefined>): Promise<Finding> {
  const socket = dockerSocketPath(env);
  const fix =
    "install Docker (apt-get install docker.io), start it (systemctl start docker), and let this user use the socket";
  if (env.DOCKER_HOST && !env.DOCKER_HOST.startsWith("unix://")) {
    return {
      check: "docker",
      status: "warn",
      message: `DOCKER_HOST=${env.DOCKER_HOST} is not a unix socket; Slipway talks to the local engine only`,
      fix: "unset DOCKER_HOST or point it at unix:///var/run/docker.sock",
    };
  }
  if (!existsSync(socket))
    return { check: "docker", status: "warn", message: `no Docker socket at ${socket}: builders cannot start`, fix };
  try {
    const res = await fetch("http://docker/version", { unix: socket, signal: AbortSignal.timeout(3000) });
    if (!res.ok)
      return { check: "docker", status: "warn", message: `Docker at ${socket} answered HTTP ${res.status}`, fix };
    const v = (await res.json()) as { Version?: string; ApiVersion?: string };
    return { check: "docker", status: "ok", message: `Docker Engine ${v.Version} (API ${v.ApiVersion}) at ${socket}` };
  } catch (e) {
    return {
      check: "docker",
      status: "warn",
      message: `Docker socket ${socket} is not reachable: ${(e as Error).message}`,
      fix,
    };
  }
}

export async function checkCryptsetup(volumes?: VolumesConfig): Promise<Finding[]> {
  const out: Finding[] = [];
  if (!which("cryptsetup")) {
    out.push({
      check: "cryptsetup",
      status: "warn",
      message: "cryptsetup is not installed: encrypted cache volumes are unavailable",
      fix: "apt-get install cryptsetup-bin",
    });
  } else {
    const v = await run(["cryptsetup", "--version"]);
    out.push({ check: "cryptsetup", status: "ok", message: v.stdout.trim() || "cryptsetup present" });
  }
  const dm = detectDmCrypt();
  out.push(
    dm.usable
      ? { check: "dm-crypt", status: "ok", message: dm.reason }
      : {
          check: "dm-crypt",
          status: "warn",
          message: `LUKS volumes cannot be opened here: ${dm.reason}`,
          fix: 'use a kernel with dm-crypt (modprobe dm_crypt), or set volumes.encryption = "none" to accept unencrypted caches',
        },
  );
  if (volumes) out.push(checkVolumes(volumes, dm));
  return out;
}

export async function checkFirewall(): Promise<Finding[]> {
  const out: Finding[] = [];
  if (!which("iptables")) {
    out.push({
      check: "iptables",
      status: "warn",
      message: "iptables is not installed: egress rules cannot be enforced on this host",
      fix: "apt-get install iptables",
    });
  } else {
    const v = (await run(["iptables", "--version"])).stdout.trim();
    const backend = /nf_tables/.test(v) ? "nf_tables" : /legacy/.test(v) ? "legacy" : "unknown";
    out.push({ check: "iptables", status: "ok", message: `${v} (backend: ${backend})` });
  }
  if (!which("ipset")) {
    out.push({
      check: "ipset",
      status: "warn",
      message: "ipset is not installed: egress address lists are unavailable",
      fix: "apt-get install ipset",
    });
  } else {
    const v = (await run(["ipset", "--version"])).stdout.trim().split("\n")[0];
    out.push({ check: "ipset", status: "ok", message: v || "ipset present" });
  }
  return out;
}

export async function checkPorts(loaded: LoadedConfig): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const [name, key, value] of [
    ["API", "server.listen", loaded.config.server.listen],
    ["build endpoint", "server.build_listen", loaded.config.server.build_listen],
  ] as const) {
    const addr = parseListenAddress(value)!;
    const problem = await probePort(addr);
    out.push(
      problem
        ? {
            check: `port:${key}`,
            status: "fail",
            message: `${name} address ${formatListenAddress(addr)} cannot be bound: ${problem}`,
            fix: `stop what uses it (is slipway already running?) or set ${key}`,
          }
        : { check: `port:${key}`, status: "ok", message: `${name} address ${formatListenAddress(addr)} is free` },
    );
  }
  return out;
}

export function checkDataDir(dir: string): Finding {
  const problem = dataDirProblem(dir);
  if (problem)
    return {
      check: "data-dir",
      status: "fail",
      message: `data dir ${dir} ${problem}`,
      fix: "choose a writable --data-dir, or fix its ownership",
    };
  if (!existsSync(dir))
    return { check: "data-dir", status: "ok", message: `data dir ${dir} will be created on first start (mode 0700)` };
  const mode = statSync(dir).mode & 0o777;
  if (mode & 0o077) {
    return {
      check: "data-dir",
      status: "warn",
      message: `data dir ${dir} has mode ${mode.toString(8).padStart(4, "0")}; other users can look inside`,
      fix: `chmod 700 ${dir}`,
    };
  }
  return {
    check: "data-dir",
    status: "ok",
    message: `data dir ${dir} is writable, mode ${mode.toString(8).padStart(4, "0")}`,
  };
}

export function checkMasterKey(loaded: LoadedConfig, env: Record<string, string | undefined>): Finding {
  const { source, path } = locateMasterKey({
    dataDir: loaded.dataDir,
    configuredFile: loaded.config.secrets.master_key_file,
    credentialsDirectory: env.CREDENTIALS_DIRECTORY,
  });
  if (!existsSync(path)) {
    if (source === "data-dir" && !existsSync(join(loaded.dataDir, "slipway.db"))) {
      return { check: "master-key", status: "ok", message: `master key will be generated at ${path} on first start` };
    }
    return {
      check: "master-key",
      status: "fail",
      message: `master key ${path} (${source}) is missing`,
      fix: "restore master.key from your backup; without it sealed secrets cannot be read",
    };
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    return {
      check: "master-key",
      status: "fail",
      message: `master key ${path} has mode ${mode.toString(8).padStart(4, "0")}: readable by other users`,
      fix: `chmod 600 ${path}`,
    };
  }
  return {
    check: "master-key",
    status: "ok",
    message: `master key ${path} (${source}), mode ${mode.toString(8).padStart(4, "0")}`,
  };
}

/** Which builder runtime and image are configured, and whether the image is on the engine. */
export async function checkBuilderImage(
  loaded: LoadedConfig,
  env: Record<string, string | undefined>,
  docker: Finding,
): Promise<Finding> {
  const c = configuredImage(loaded.config.builders);
  if (docker.status !== "ok")
    return {
      check: "builder-image",
      status: "warn",
      message: `runtime ${c.runtime}, image ${c.image}: cannot check without Docker`,
    };
  const service = builderImageServiceFactory({
    docker: new Docker({ socketPath: dockerSocketPath(env) }),
    log: silentLogger,
  });
  return doctorBuilderImageCheck(service, c);
}

/**
 * Builders of this appliance (its database names it) still running an image or settings other than
 * the configured ones: a warning, since serve recreates each when it is next idle.
 */
/** The builder network policy: its setting, what applying it needs, and whether a running serve has it in force. */
export async function checkBuilderNetworkPolicy(loaded: LoadedConfig): Promise<Finding> {
  const check = "builders:network-policy";
  const b = loaded.config.builders;
  if (b.network_policy === "off") {
    return {
      check,
      status: "warn",
      message:
        'builders.network_policy = "off": builds reach link-local addresses (cloud metadata), private networks and every service of this host',
      fix: 'set builders.network_policy = "enforce" (allow what builds need with builders.network_allow and builders.network_mirrors)',
    };
  }
  const missing = ["iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save", "ipset"].filter(
    (p) => !which(p),
  );
  if (missing.length > 0)
    return {
      check,
      status: "warn",
      message: `${missing.join(", ")} not found: the builder network policy cannot be applied and no builder will start`,
      fix: "apt-get install iptables ipset",
    };
  if (process.getuid?.() !== 0)
    return {
      check,
      status: "warn",
      message: "not running as root: serve cannot apply the builder network policy here and no builder will start",
      fix: "run serve as root (the packaged systemd unit does)",
    };
  const applianceId = readApplianceId(loaded.dataDir);
  if (!applianceId)
    return {
      check,
      status: "ok",
      message: "iptables, ip6tables and ipset present; serve applies the policy when it starts",
    };
  const policy = builderNetworkPolicyFactory({
    exec: (argv, opts) => run(argv, opts),
    names: policyNames(applianceId),
    settings: { mode: "enforce", allow: [], mirrors: [] },
    registryPort: null,
  });
  const inForce = await policy.inForce().catch(() => false);
  return inForce
    ? {
        check,
        status: "ok",
        message: `in force: builder bridges ${policy.names.bridgePrefix}+ filtered by ${policy.names.input} and ${policy.names.forward}, IPv4 and IPv6`,
      }
    : {
        check,
        status: "ok",
        message: `not in force now (serve is not running, or it could not apply it: see /readyz); serve applies it at start to bridges ${policy.names.bridgePrefix}+`,
      };
}

function readApplianceId(dataDir: string): string | undefined {
  const dbFile = join(dataDir, DB_FILE);
  if (!existsSync(dbFile)) return undefined;
  try {
    const db = new Database(dbFile, { readonly: true });
    try {
      return applianceIdOf(db) ?? undefined;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

export async function checkBuilderCurrency(
  loaded: LoadedConfig,
  env: Record<string, string | undefined>,
  docker: Finding,
): Promise<Finding[]> {
  const dbFile = join(loaded.dataDir, DB_FILE);
  if (docker.status !== "ok" || !existsSync(dbFile)) return [];
  let applianceId: string | undefined;
  try {
    const db = new Database(dbFile, { readonly: true });
    try {
      applianceId = applianceIdOf(db) ?? undefined;
    } finally {
      db.close();
    }
  } catch {
    return []; // not initialised yet: no builders
  }
  if (!applianceId) return [];
  const b = loaded.config.builders;
  const engine = new Docker({ socketPath: dockerSocketPath(env) });
  const image = configuredImage(b).image;
  const imageId =
    (
      (await engine
        .getImage(image)
        .inspect()
        .catch(() => null)) as { Id: string } | null
    )?.Id ?? null;
  const want = {
    image,
    imageId,
    settings: builderSettingsKey({
      runtime: b.runtime,
      containerdStore: b.dockerd_containerd_store,
      insecureRegistries: b.insecure_registries
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    }),
  };
  const containers = (await engine.listContainers({
    filters: JSON.stringify({ label: [`${BUILDER_LABELS.appliance}=${applianceId}`, BUILDER_LABELS.builder] }),
  })) as { Id: string; ImageID: string; Labels: Record<string, string> }[];
  const old: OutdatedBuilder[] = [];
  for (const c of containers) {
    // The reference it was created from (the list shows an id once the tag has moved on).
    const from =
      (
        (await engine
          .getContainer(c.Id)
          .inspect()
          .catch(() => null)) as { Config?: { Image?: string } } | null
      )?.Config?.Image ?? null;
    const d = imageDifference(
      { image: from, imageId: c.ImageID, settings: c.Labels[BUILDER_LABELS.settings] ?? null },
      want,
    );
    if (d)
      old.push({
        builderId: c.Labels[BUILDER_LABELS.builder]!,
        projectId: c.Labels[BUILDER_LABELS.project] ?? "?",
        platform: c.Labels[BUILDER_LABELS.platform] ?? "?",
        from: { image: from, imageId: c.ImageID },
        to: { image, imageId: imageId! },
        settingsChanged: d.settings,
      });
  }
  if (old.length === 0)
    return [
      {
        check: "builders-image-current",
        status: "ok",
        message: `${containers.length} running builder(s), all on the configured image ${image}`,
      },
    ];
  return old.map((o) => ({
    check: "builders-image-current",
    status: "warn",
    message: `builder of ${describeOutdated(o)}`,
    fix: "none needed: serve recreates it on the configured image, cache kept, when it is next idle",
  }));
}

/** Whether the other depot platform (arm64 here on amd64, and the reverse) can be built by QEMU emulation, and whether it is enabled. */
export function checkEmulation(loaded: LoadedConfig, binfmtDir = BINFMT_DIR): Finding {
  const foreign = process.arch === "arm64" ? "linux/amd64" : "linux/arm64";
  const d = describeEmulation(emulationStatus(foreign, loaded.config.builders.allow_emulation, binfmtDir));
  return { check: "emulation", status: d.status, message: d.message, ...(d.fix ? { fix: d.fix } : {}) };
}

/** The appliance's registry (saved builds): docker-registry must be installed when it is enabled. */
export function checkRegistry(loaded: LoadedConfig): Finding {
  const r = loaded.config.registry;
  if (!r.enabled)
    return {
      check: "registry",
      status: "ok",
      message: "disabled (registry.enabled = false): --save and depot pull are refused",
    };
  const exe = r.binary.includes("/") ? (existsSync(r.binary) ? r.binary : null) : which(r.binary);
  if (!exe) {
    return {
      check: "registry",
      status: "warn",
      message: `${r.binary} is not installed: serve starts, but --save, depot pull, pull tokens and --load through the registry are refused`,
      fix: "apt-get install docker-registry",
    };
  }
  return { check: "registry", status: "ok", message: `${exe} (saved builds kept ${r.retention_days} days by default)` };
}

export async function runDoctor({ loaded, env }: DoctorInput): Promise<Finding[]> {
  const docker = await checkDocker(env);
  return [
    docker,
    await checkBuilderImage(loaded, env, docker),
    ...(await checkBuilderCurrency(loaded, env, docker)),
    checkEmulation(loaded),
    ...(await checkCryptsetup(loaded.config.volumes)),
    ...(await checkFirewall()),
    await checkBuilderNetworkPolicy(loaded),
    ...(await checkPorts(loaded)),
    checkDataDir(loaded.dataDir),
    checkMasterKey(loaded, env),
    checkRegistry(loaded),
  ];
}
