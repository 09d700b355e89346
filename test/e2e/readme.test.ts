/**
 * @module test/e2e/readme
 * The README's promises: its configuration table covers every setting the schema knows, and
 * its first command, `npm start`, on a fresh clone with nothing installed, installs what it
 * needs and brings up a server that answers /readyz and says where the admin token is.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { knownKeys } from "../../src/config/index.ts";
import { integrationSuite } from "../support/integration.ts";
import { freePort } from "../support/serve.ts";

const ROOT = join(import.meta.dir, "..", "..");
const readme = readFileSync(join(ROOT, "README.md"), "utf8");

describe("README configuration reference", () => {
  test("documents every key with its env name", () => {
    for (const [section, keys] of Object.entries(knownKeys())) {
      for (const key of Object.keys(keys)) {
        expect(readme).toContain(
          `| \`${section}.${key}\` | \`SLIPWAY_${section.toUpperCase()}_${key.toUpperCase()}\` |`,
        );
      }
    }
  });

  test("the example config file names every key", () => {
    const example = readFileSync(join(ROOT, "packaging", "slipway.toml"), "utf8");
    for (const [section, keys] of Object.entries(knownKeys())) {
      expect(example).toContain(`[${section}]`);
      for (const key of Object.keys(keys)) expect(example).toMatch(new RegExp(`^# ${key} = `, "m"));
    }
  });
});

/** Pids of processes whose working directory is `dir`. */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === dir) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

const work = mkdtempSync(join(tmpdir(), "slipway-readme-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const hasGit = Bun.which("git") && existsSync(join(ROOT, ".git")) ? null : "not a git checkout (the test clones it)";

integrationSuite("README first command on a fresh clone", hasGit, () => {
  test("`npm start` installs the dependencies and serves /readyz", async () => {
    const clone = join(work, "clone");
    const git = Bun.spawnSync(["git", "clone", "--quiet", ROOT, clone]);
    expect(git.exitCode).toBe(0);
    expect(existsSync(join(clone, "node_modules"))).toBe(false);
    const port = await freePort();
    const home = join(work, "home");
    const proc = Bun.spawn(["npm", "start"], {
      cwd: clone,
      stdout: "pipe",
      stderr: "pipe",
      // Only the listen addresses differ from a newcomer's run, so parallel CI jobs do not collide.
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        SLIPWAY_SERVER_LISTEN: `127.0.0.1:${port}`,
        SLIPWAY_SERVER_BUILD_LISTEN: `127.0.0.1:${await freePort()}`,
      },
    });
    let logs = "";
    void (async () => {
      for await (const c of proc.stderr) logs += new TextDecoder().decode(c);
    })();
    try {
      const caFile = join(home, ".local", "share", "slipway", "ca.pem");
      const deadline = Date.now() + 240_000;
      let status = 0;
      while (Date.now() < deadline && proc.exitCode === null) {
        try {
          if (existsSync(caFile))
            status = (await fetch(`https://localhost:${port}/readyz`, { tls: { ca: readFileSync(caFile, "utf8") } }))
              .status;
        } catch {}
        if (status === 200) break;
        await Bun.sleep(250);
      }
      expect(status, logs.slice(-3000)).toBe(200);
      expect(existsSync(join(clone, "node_modules", ".bin", "bun"))).toBe(true);
      expect(logs).toContain(join(home, ".local", "share", "slipway", "initial-admin-token"));
    } finally {
      // npm runs bun as a child process: stop every process working in the clone.
      for (const pid of processesIn(clone)) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // it exited between the listing and the signal
        }
      }
      await proc.exited;
    }
  }, 300_000);
});
