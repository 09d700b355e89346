/**
 * @module appliance/preflight
 * Checks that need nothing created: ports free, data dir usable, operator TLS files readable.
 * `serve` runs them before it writes a single byte, so a failed start leaves nothing behind.
 */
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { formatListenAddress, type ListenAddress } from "../config/listen.ts";
import { ConfigError } from "../errors.ts";

/** Resolves to null when the address can be bound, or to a reason when it cannot. */
export function probePort(addr: ListenAddress): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) =>
      resolve(
        e.code === "EADDRINUSE"
          ? "already in use"
          : e.code === "EACCES"
            ? "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            : e.code === "EADDRNOTAVAIL"
              ? "no such local address"
              : (e.code ?? e.message),
      ),
    );
    srv.listen({ host: addr.hostname, port: addr.port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

export async function checkPortsFree(ports: { name: string; flag: string; addr: ListenAddress }[]): Promise<void> {
  for (const p of ports) {
    const problem = await probePort(p.addr);
    if (problem)
      throw new ConfigError(`cannot listen on ${formatListenAddress(p.addr)} (${p.name}, ${p.flag}): ${problem}`);
  }
}

/** A reason the data dir cannot be used, or null. Creates nothing. */
export function dataDirProblem(dir: string): string | null {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) return "exists and is not a directory";
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch {
      return "is not writable by this user";
    }
    return null;
  }
  // Find the nearest existing ancestor: it must be a writable directory.
  let parent = join(dir, "..");
  while (!existsSync(parent) && parent !== "/") parent = join(parent, "..");
  if (!statSync(parent).isDirectory()) return `${parent} is not a directory`;
  try {
    accessSync(parent, constants.W_OK | constants.X_OK);
  } catch {
    return `cannot be created: ${parent} is not writable by this user`;
  }
  return null;
}

/** Creates the data dir (mode 0700) and proves it writable with a probe file. */
export function prepareDataDir(dir: string): void {
  const problem = dataDirProblem(dir);
  if (problem) throw new ConfigError(`data dir ${dir} ${problem} (set --data-dir or data.dir)`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const probe = join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, "");
    rmSync(probe);
  } catch (e) {
    throw new ConfigError(
      `data dir ${dir} is not usable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (set --data-dir or data.dir)`,
    );
  }
}

export function checkReadable(files: { key: string; path: string }[]): void {
  for (const f of files) {
    try {
      accessSync(f.path, constants.R_OK);
    } catch (e) {
      throw new ConfigError(
        `config: ${f.key} = ${JSON.stringify(f.path)} cannot be read: ${(e as NodeJS.ErrnoException).code ?? "error"}`,
      );
    }
  }
}
