/**
 * @module test/support/plain-registry
 * A throwaway Debian docker-registry over plain HTTP for push tests: its storage in `dir`,
 * listening on every address of this machine so builders reach it on their network's gateway
 * (which serve must then list in builders.insecure_registries).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, PORT_TAKEN } from "./serve.ts";

export interface PlainRegistry {
  port: number;
  stop(): void;
}

/** Starts it and waits (up to 60 s) until `/v2/` answers on loopback; on fresh ports if one was taken. */
export async function startPlainRegistry(dir: string): Promise<PlainRegistry> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, "registry.yml");
    writeFileSync(
      config,
      `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "registry")}\nhttp:\n  addr: 0.0.0.0:${port}\n`,
    );
    const proc = Bun.spawn(["docker-registry", "serve", config], { stdout: "ignore", stderr: "pipe" });
    const stderr = new Response(proc.stderr).text();
    const deadline = Date.now() + 60_000;
    while (proc.exitCode === null && Date.now() < deadline) {
      if ((await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => null))?.ok) return { port, stop: () => proc.kill() };
      await Bun.sleep(100);
    }
    proc.kill();
    const said = await stderr;
    if (PORT_TAKEN.test(said) && attempt < 5) continue;
    throw new Error(`docker-registry did not answer on port ${port}:\n${said}`);
  }
}

/**
 * `serve` arguments for builders that push to such a registry: the image, plain HTTP allowed to
 * Docker's bridge networks (the registry is reached on a builder network's gateway), plain
 * caches. Everything else stays on serve's defaults (trixie's dockerd, containerd's store).
 */
export const pushingServeArgs = (imageRef: string): string[] => [
  "--set",
  `builders.dockerd_image=${imageRef}`,
  "--set",
  "builders.insecure_registries=172.16.0.0/12,192.168.0.0/16",
  "--set",
  "volumes.encryption=none",
  // The plain registry listens on this host, which the builder network policy keeps builders
  // from reaching (its own suite, builder-network-policy.test.ts, covers the policy).
  "--set",
  "builders.network_policy=off",
];
