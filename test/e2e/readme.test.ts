/**
 * @module test/e2e/readme
 * The README's promises: its configuration table covers every setting the schema knows; and on
 * a fresh clone with nothing installed, its first command (the `npm start` line of "Two
 * commands", as written) installs what it needs, compiles the binary and serves, then every
 * other ```sh block of "From source: two commands", "First login" and "First build" runs, in order, in one
 * bash, as a reader's second terminal would: the first build really builds with the depot CLI in
 * the new user's organization. The test changes only what a reader's machine would: free ports
 * for 8443 and 8444, HOME, and the builder image's name (the tests' shared image).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { knownKeys } from "../../src/config/index.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { builderImageMissing, ensureDockerdBuilderImage } from "../support/builder-image.ts";
import { DEPOT } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";
import { freePort, servedDataDirs } from "../support/serve.ts";

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

/** The ```sh blocks of the README section headed `## title`, in order. */
export function shellBlocks(markdown: string, title: string): string[] {
  const start = markdown.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section '## ${title}'`);
  const end = markdown.indexOf("\n## ", start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

describe("README sections the test runs", () => {
  test("Two commands opens with the npm start line; every section has commands to run", () => {
    const [serveBlock] = shellBlocks(readme, "From source: two commands");
    expect(serveBlock).toMatch(/^npm start -- /);
    expect(serveBlock).toContain("--listen 127.0.0.1:8443");
    for (const title of ["First login", "First build"]) expect(shellBlocks(readme, title).length).toBeGreaterThan(0);
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
// A fresh clone with its node_modules: on a busy machine removing it outlasts the 5 s hook default.
afterAll(() => rmSync(work, { recursive: true, force: true }), 120_000);
const missing =
  (Bun.which("git") && existsSync(join(ROOT, ".git")) ? null : "not a git checkout (the test clones it)") ??
  (existsSync(DEPOT) ? null : `the depot CLI is not installed (${DEPOT})`) ??
  (Bun.which("docker") ? null : "no docker CLI (the README lists builders with it)") ??
  (await builderImageMissing("trixie"));

integrationSuite("README on a fresh clone: npm start, first login, first build", missing, () => {
  test("`npm start` installs, compiles and serves; the first login and first build run as written", async () => {
    const image = await ensureDockerdBuilderImage({ suite: "trixie" });
    const clone = join(work, "clone");
    const git = Bun.spawnSync(["git", "clone", "--quiet", ROOT, clone]);
    expect(git.exitCode).toBe(0);
    expect(existsSync(join(clone, "node_modules"))).toBe(false);
    const [port, buildPort] = [await freePort(), await freePort()];
    const ports = (text: string) => text.replaceAll("8443", String(port)).replaceAll("8444", String(buildPort));
    const home = join(work, "home");
    const env = { PATH: process.env.PATH ?? "", HOME: home, SLIPWAY_BUILDERS_DOCKERD_IMAGE: image.ref };
    const [serveBlock, ...twoCommands] = shellBlocks(readme, "From source: two commands");
    const dataDir = join(clone, "data");
    servedDataDirs.add(dataDir); // the builders it starts are removed afterwards by its appliance id
    const t0 = performance.now();
    const proc = Bun.spawn(["bash", "-c", ports(serveBlock!)], { cwd: clone, stdout: "pipe", stderr: "pipe", env });
    let logs = "";
    for (const s of [proc.stdout, proc.stderr])
      void (async () => {
        for await (const c of s) logs += new TextDecoder().decode(c);
      })();
    try {
      const caFile = join(dataDir, "ca.pem");
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
      console.log(`  npm start on a fresh clone: ready in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      expect(existsSync(join(clone, "node_modules", ".bin", "bun"))).toBe(true);
      expect(logs).toContain(`the binary is ${join(clone, "dist", "bin", "slipway")}`);
      expect(logs).toContain(`to run slipway and depot by name: export PATH="${join(clone, "dist", "bin")}:$PATH"`);
      expect(logs).toContain(`"admin_token_file":"${join(dataDir, "initial-admin-token")}"`);

      const script = [...twoCommands, ...shellBlocks(readme, "First login"), ...shellBlocks(readme, "First build")]
        .map(ports)
        .join("\n");
      const t1 = performance.now();
      const reader = Bun.spawnSync(["bash", "-c", `set -euo pipefail\n${script}`], {
        cwd: clone,
        env,
        stdout: "pipe",
        stderr: "pipe",
        timeout: 180_000,
      });
      const out = reader.stdout.toString();
      const err = reader.stderr.toString();
      expect(reader.exitCode, `${out}\n${err}\n${logs.slice(-3000)}`).toBe(0);
      console.log(`  the README's commands ran in ${((performance.now() - t1) / 1000).toFixed(0)} s`);
      expect(out).toContain('"username":"admin"');
      expect(out).toMatch(/^acme\b/m);
      expect(readFileSync(join(clone, "out", "greeting.txt"), "utf8")).toBe("hello from slipway\n");

      // The build is alice's, in her organization, and it finished.
      const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
      const ca = readFileSync(join(dataDir, "ca.pem"), "utf8");
      const page = (await (
        await fetch(`https://localhost:${port}/api/v1/orgs/acme/builds`, {
          headers: { authorization: `Bearer ${admin}` },
          tls: { ca },
        })
      ).json()) as { builds: { status: string; project_id: string }[] };
      expect(page.builds.map((b) => b.status)).toEqual(["finished"]);
    } finally {
      // npm runs bun, which runs the binary: stop every process working in the clone.
      for (const pid of processesIn(clone)) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // it exited between the listing and the signal
        }
      }
      await proc.exited;
      await removeBuildersOfServed();
    }
  }, 300_000);
});
