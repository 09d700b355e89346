/**
 * @module registry/process
 * Debian's docker-registry (the distribution registry 2.8) as a child of `serve`: its config
 * written under `<data dir>/registry`, listening on a unix socket there (nothing else on the
 * machine can reach it; clients come through serve's HTTPS proxy), token auth pointing at
 * Slipway, deletes enabled. Restarted when it dies; stopped with serve; stopped for a
 * `garbage-collect` run (the registry must not take writes while GC marks and sweeps).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, startService, which, type ServiceProcess } from "../host/run.ts";
import type { Logger } from "../log/logger.ts";

export const REGISTRY_SERVICE = "slipway-registry";
export const REGISTRY_ISSUER = "slipway";

export interface RegistryProcessOptions {
  binary: string;
  /** `<data dir>/registry`: config, socket, storage. */
  dir: string;
  /** PEM of the token signer's certificate (rootcertbundle). */
  signerCertPem: string;
  log: Logger;
}

export interface RegistryProcess {
  socketPath: string;
  storageDir: string;
  /** Why it cannot run (binary missing), or null. */
  unavailable: string | null;
  /** Running and answering on its socket. */
  ready(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the registry, runs `garbage-collect`, starts it again. */
  garbageCollect(): Promise<{ ok: boolean; output: string }>;
}

/** The registry's config (YAML; JSON is valid YAML and leaves no quoting to get wrong). */
export function registryConfig(o: {
  storageDir: string;
  socketPath: string;
  bundle: string;
  httpSecret: string;
}): string {
  return `${JSON.stringify(
    {
      version: 0.1,
      log: { level: "error", accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: o.storageDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: true, age: "24h", interval: "1h", dryrun: false } },
      },
      http: { net: "unix", addr: o.socketPath, relativeurls: true, secret: o.httpSecret },
      // The realm here is a placeholder: serve's proxy rewrites it to the host each request came in on.
      auth: {
        token: {
          realm: "https://slipway.invalid/registry/token",
          service: REGISTRY_SERVICE,
          issuer: REGISTRY_ISSUER,
          rootcertbundle: o.bundle,
          autoredirect: false,
        },
      },
    },
    null,
    2,
  )}\n`;
}

export function registryProcessFactory(o: RegistryProcessOptions): RegistryProcess {
  const { log } = o;
  const exe = o.binary.includes("/") ? (existsSync(o.binary) ? o.binary : null) : which(o.binary);
  const socketPath = join(o.dir, "registry.sock");
  const storageDir = join(o.dir, "storage");
  const configFile = join(o.dir, "config.yml");
  const bundle = join(o.dir, "token-signer.pem");
  const pidFile = join(o.dir, "registry.pid");
  let child: ServiceProcess | null = null;
  let up = false;
  let wanted = false;
  let restarts = 0;
  let restartTimer: ReturnType<typeof setTimeout> | null = null;

  async function waitReady(c: ServiceProcess, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void c.exited.then(() => (exited = true));
    while (Date.now() < deadline && !exited) {
      try {
        const r = await fetch("http://registry/v2/", { unix: socketPath, signal: AbortSignal.timeout(1000) });
        if (r.status === 401 || r.status === 200) return;
      } catch {}
      await Bun.sleep(50);
    }
    throw new Error(exited ? "docker-registry exited while starting" : "docker-registry did not answer on its socket");
  }

  /** A registry left running by a serve that was killed (SIGKILL): stopped before a new one
   * starts, so two never share the storage. Recognised by its pid file and its command line. */
  async function stopLeftover() {
    let pid = 0;
    try {
      pid = Number(readFileSync(pidFile, "utf8").trim());
    } catch {
      return;
    }
    const cmdline = (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      } catch {
        return [];
      }
    })();
    if (pid > 1 && cmdline.includes("serve") && cmdline.includes(configFile)) {
      log.warn("stopping a docker-registry left running by a previous serve", { pid });
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await Bun.sleep(50);
      if (existsSync(`/proc/${pid}`)) process.kill(pid, "SIGKILL");
    }
    rmSync(pidFile, { force: true });
  }

  async function spawnOnce() {
    await stopLeftover();
    rmSync(socketPath, { force: true });
    // Its per-request errors (an unknown blob, a missing token) are routine: kept at debug, and
    // the last lines said again if it dies.
    const last: string[] = [];
    // A clean environment: REGISTRY_* variables would override the config file.
    // setpriv --pdeathsig: the registry gets SIGTERM if serve dies without stopping it.
    const setpriv = which("setpriv");
    const c = startService([...(setpriv ? [setpriv, "--pdeathsig", "TERM"] : []), exe!, "serve", configFile], {
      inheritEnv: false,
      onLine: (line) => {
        last.push(line.slice(0, 500));
        if (last.length > 5) last.shift();
        log.debug("docker-registry", { line: line.slice(0, 500) });
      },
    });
    child = c;
    writeFileSync(pidFile, `${c.pid}\n`, { mode: 0o600 });
    void c.exited.then((code) => {
      if (child !== c) return;
      up = false;
      child = null;
      if (!wanted) return;
      restarts++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(restarts, 6));
      log.warn("docker-registry exited; restarting it", { code, restart_in_ms: delay, last_lines: last.join(" | ") });
      restartTimer = setTimeout(() => {
        restartTimer = null;
        if (wanted && !child)
          spawnOnce().catch((e) => log.error("docker-registry failed to restart", { error: (e as Error).message }));
      }, delay);
    });
    await waitReady(c);
    up = true;
    restarts = 0;
  }

  return {
    socketPath,
    storageDir,
    unavailable: exe ? null : `${o.binary} is not installed (apt-get install docker-registry)`,
    ready: () => up,
    async start() {
      if (!exe) throw new Error(`${o.binary} is not installed`);
      mkdirSync(storageDir, { recursive: true, mode: 0o700 });
      writeFileSync(bundle, o.signerCertPem, { mode: 0o600 });
      const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
      writeFileSync(configFile, registryConfig({ storageDir, socketPath, bundle, httpSecret: secret }), {
        mode: 0o600,
      });
      wanted = true;
      await spawnOnce();
    },
    async stop() {
      wanted = false;
      if (restartTimer) clearTimeout(restartTimer);
      restartTimer = null;
      const c = child;
      child = null;
      up = false;
      if (!c) return;
      c.kill("SIGTERM");
      const done = await Promise.race([c.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
      if (!done) {
        c.kill("SIGKILL");
        await c.exited;
      }
      rmSync(pidFile, { force: true });
    },
    async garbageCollect() {
      if (!exe) return { ok: false, output: "docker-registry is not installed" };
      const wasWanted = wanted;
      await this.stop();
      try {
        const r = await run([exe, "garbage-collect", configFile], { timeoutMs: 30 * 60_000, inheritEnv: false });
        return { ok: r.code === 0, output: (r.code === 0 ? "" : r.stderr || r.stdout).trim().slice(-2000) };
      } finally {
        if (wasWanted) await this.start();
      }
    },
  };
}
