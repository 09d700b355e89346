/**
 * @module test/support/builder-image
 * The `dockerd` builder image for tests, built once and reused across test files and runs: an
 * image tagged TEST_IMAGE whose io.slipway.recipe label equals the current recipe hash is reused
 * as is; else the rootfs tarball cached under CACHE_DIR (keyed by the same hash) is re-imported
 * (~10 s); else it is assembled with debootstrap (~1.5-2 min, root only) and both are cached.
 * A lock file serialises concurrent test processes on one machine. Also: starting a builder
 * container from it (the fallback security profile) and a tiny build context with a shell.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import Docker from "dockerode";
import {
  DOCKERD_SOCKET_NAME,
  builderImageServiceFactory,
  dockerdContainerProfile,
  listWorkersAt,
  recipeHash,
  type Suite,
  type WorkerInfo,
} from "../../src/builders/image/index.ts";
import { which } from "../../src/host/run.ts";
import { silentLogger, type Logger } from "../../src/log/logger.ts";

export const DOCKER_SOCK = "/var/run/docker.sock";
/** Outside the worktree so reruns (and other checkouts on the machine) share it. */
export const CACHE_DIR = process.env.SLIPWAY_TEST_CACHE ?? "/var/cache/slipway-test";
/** Tagged with the recipe: checkouts with different recipes on one machine keep their own image
 * (one tag for all would be re-imported back and forth, and a test could start another's). */
export const testImageRef = (suite: Suite = "trixie") =>
  `slipway/builder-dockerd:test-${suite}-${recipeHash(suite).slice(0, 12)}`;
/** How long a test that may have to assemble the image should allow (cold: debootstrap). */
export const BUILDER_IMAGE_TIMEOUT_MS = 15 * 60_000;

export const docker = () => new Docker({ socketPath: DOCKER_SOCK });

export interface EnsuredImage {
  ref: string;
  id: string;
  /** How it was obtained: reused image, re-imported cached tarball, or assembled now. */
  source: "image" | "tarball" | "debootstrap";
  seconds: number;
}

/** Why this host's dockerd cannot be used, or null. Use as integrationSuite's `missing`. */
export async function dockerdMissing(): Promise<string | null> {
  try {
    const res = await fetch("http://docker/_ping", { unix: DOCKER_SOCK, signal: AbortSignal.timeout(3000) });
    return res.ok ? null : `GET /_ping on ${DOCKER_SOCK} answered ${res.status}`;
  } catch (e) {
    return `no dockerd at ${DOCKER_SOCK} (${(e as Error).message})`;
  }
}

/** Why the image cannot be had here, or null. Use as integrationSuite's `missing`. */
export async function builderImageMissing(suite: Suite = "trixie"): Promise<string | null> {
  const noDockerd = await dockerdMissing();
  if (noDockerd) return noDockerd;
  const state = await builderImageServiceFactory({ docker: docker(), log: silentLogger }).inspect(testImageRef(suite));
  if (state.present && state.recipe === recipeHash(suite)) return null;
  if (existsSync(tarballPath(suite))) return null;
  if (process.getuid?.() !== 0) return "building the dockerd builder image needs root (debootstrap)";
  if (!which("debootstrap")) return "debootstrap is not installed";
  return null;
}

const tarballPath = (suite: Suite) => join(CACHE_DIR, `builder-dockerd-${suite}-${recipeHash(suite)}.tar`);

/** An exclusive lock file; a lock whose owner process is gone (or older than 30 min) is taken over. */
async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + BUILDER_IMAGE_TIMEOUT_MS;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let stale = false;
      try {
        const pid = Number(readFileSync(path, "utf8"));
        stale = Date.now() - statSync(path).mtimeMs > 30 * 60_000;
        if (!stale && pid > 0) process.kill(pid, 0);
      } catch {
        stale = true;
      }
      if (stale) rmSync(path, { force: true });
      else if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
      else await Bun.sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

const memo = new Map<Suite, Promise<EnsuredImage>>();

/** The dockerd builder image for `suite`, built at most once (see the module comment). */
export function ensureDockerdBuilderImage(opts: { suite?: Suite; log?: Logger } = {}): Promise<EnsuredImage> {
  const suite = opts.suite ?? "trixie";
  let p = memo.get(suite);
  if (!p) {
    p = ensure(suite, opts.log ?? silentLogger);
    p.catch(() => memo.delete(suite));
    memo.set(suite, p);
  }
  return p;
}

async function ensure(suite: Suite, log: Logger): Promise<EnsuredImage> {
  const t0 = performance.now();
  const ref = testImageRef(suite);
  const recipe = recipeHash(suite);
  const svc = builderImageServiceFactory({ docker: docker(), log });
  const current = async () => {
    const s = await svc.inspect(ref);
    return s.present && s.recipe === recipe ? s : null;
  };
  const have = await current();
  if (have) return { ref, id: have.id!, source: "image", seconds: (performance.now() - t0) / 1000 };
  mkdirSync(CACHE_DIR, { recursive: true });
  return withLock(join(CACHE_DIR, `builder-dockerd-${suite}.lock`), async () => {
    const again = await current(); // another process may have made it while we waited
    if (again) return { ref, id: again.id!, source: "image" as const, seconds: (performance.now() - t0) / 1000 };
    const tar = tarballPath(suite);
    if (existsSync(tar)) {
      const img = await svc.importRootfs(tar, { ref, suite, mirror: "(cached tarball)" });
      return { ref, id: img.id, source: "tarball" as const, seconds: (performance.now() - t0) / 1000 };
    }
    const img = await svc.build({ suite, tag: ref, keepTarball: tar, debCacheDir: join(CACHE_DIR, "debs", suite) });
    return { ref, id: img.id, source: "debootstrap" as const, seconds: (performance.now() - t0) / 1000 };
  });
}

export interface RunningBuilder {
  name: string;
  id: string;
  socketDir: string;
  dataDir: string;
  socketPath: string;
  /** Milliseconds from container start to BuildKit answering ListWorkers. */
  readyMs: number;
  workers: WorkerInfo[];
  stop(): Promise<void>;
}

/** Polls ListWorkers over the socket until it answers or `timeoutMs` passes. */
export async function waitForBuildKit(socketPath: string, timeoutMs = 30_000): Promise<WorkerInfo[]> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (existsSync(socketPath)) {
      try {
        return await listWorkersAt(socketPath, "dockerd", 2000);
      } catch (e) {
        last = e;
      }
    }
    await Bun.sleep(50);
  }
  throw new Error(
    `BuildKit at ${socketPath} did not answer ListWorkers within ${timeoutMs} ms: ${(last as Error)?.message ?? "no socket"}`,
  );
}

/**
 * Starts a builder container from `image` with the fallback security profile (what this machine
 * allows), binding `baseDir`/sock and `baseDir`/data, and waits until BuildKit answers.
 */
export async function startDockerdBuilder(
  image: string,
  baseDir: string,
  opts: { name?: string; dataDir?: string } = {},
): Promise<RunningBuilder> {
  const d = docker();
  const name = opts.name ?? `slipway-test-builder-${crypto.randomUUID().slice(0, 8)}`;
  const socketDir = join(baseDir, "sock");
  const dataDir = opts.dataDir ?? join(baseDir, "data");
  mkdirSync(socketDir, { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  const container = await d.createContainer({
    name,
    Labels: { "io.slipway.test": "builder-image" },
    ...dockerdContainerProfile({ image, socketDir, dataDir, profile: "fallback" }),
  });
  const socketPath = join(socketDir, DOCKERD_SOCKET_NAME);
  const t0 = performance.now();
  await container.start();
  let workers: WorkerInfo[];
  try {
    workers = await waitForBuildKit(socketPath);
  } catch (e) {
    const logs = (await container.logs({ stdout: true, stderr: true, tail: 30 })).toString();
    await container.remove({ force: true, v: true }).catch(() => {});
    throw new Error(`${(e as Error).message}\ncontainer log:\n${logs}`);
  }
  const readyMs = performance.now() - t0;
  return {
    name,
    id: container.id,
    socketDir,
    dataDir,
    socketPath,
    readyMs,
    workers,
    async stop() {
      await container.remove({ force: true, v: true }).catch(() => {});
    },
  };
}

/**
 * A build context whose base is a static busybox (Debian's busybox-static), so RUN steps have a
 * shell without pulling any image: FROM scratch, COPY busybox, install the applets, then `body`.
 */
export function writeBusyboxContext(dir: string, body: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(busyboxPath(), join(dir, "busybox"));
  writeFileSync(
    join(dir, "Dockerfile"),
    `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n${body}\n`,
  );
}

/** Why no static busybox is at hand, or null. Use as (part of) integrationSuite's `missing`. */
export function busyboxMissing(): string | null {
  try {
    busyboxPath();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export function busyboxPath(): string {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  throw new Error("no static busybox on this host: apt-get install busybox-static");
}
