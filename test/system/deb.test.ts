/**
 * @module test/system/deb.test
 * The package in a real Debian system with systemd as PID 1 (machine.ts says why a container and
 * how Docker and the network reach it; rootfs.ts, the image and the local archive the Depends
 * come from). One system, on the host's network, runs in order: the README's "Install on Debian"
 * section verbatim (install, first login, first build with the depot CLI inside the system), then
 * readiness over HTTPS with the appliance's CA and journald priorities; a build with the depot
 * CLI from the host; a SIGKILL that systemd answers with a restart that adopts the builder;
 * `apt remove` (data kept); `apt purge` (before/after listings of the system's files and of the
 * host's containers, networks, volumes, chains, sets, and the hosts file); then the previous
 * release installed and upgraded to this one (data kept, migrations applied after their backup,
 * a build), purged again. A second system with no network installs the offline bundle with the
 * README's "Air-gapped install" commands (which must be INSTALL's). Each phase's time is printed.
 * Lintian runs in the package test, on the same .debs (built once per run, see packages.ts).
 *
 * The site's own settings (loopback ports 8443/8444 as the README names them, the test's builder
 * image, plain cache volumes: no device-mapper here) are its /etc/slipway/slipway.toml, written
 * before the package and kept over the conffile. `sudo` in the README is the real sudo, run by root.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { findBuildkitClient } from "../../src/cli/client/build-session.ts";
import { policyNames } from "../../src/builders/network-policy.ts";
import { removeBuildersOf } from "../support/builder-cleanup.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { DEPOT, depotEnv, finished, waitFor } from "../support/depot.ts";
import { integrationSuite, REQUIRE_INTEGRATION } from "../support/integration.ts";
import {
  HOST_DATA_LINK,
  hostDataPathBusy,
  linkHostDataPath,
  type Machine,
  startMachine,
  unlinkHostDataPath,
} from "./machine.ts";
import { currentDebs, buildPreviousDeb, type CurrentDebs, currentVersion, ROOT } from "./packages.ts";
import { ensureSystemImage, systemImageMissing } from "./rootfs.ts";

const missing =
  systemImageMissing() ??
  hostDataPathBusy() ??
  (existsSync(DEPOT) ? null : `the depot CLI is not installed (${DEPOT})`) ??
  (findBuildkitClient(process.env)?.kind !== "buildx" ? "docker-buildx is not installed" : null) ??
  (await builderImageMissing());

/** builders.dockerd_image's default: the offline bundle's image and the README's import name it. */
const DEFAULT_BUILDER_IMAGE = "slipway/builder-dockerd:trixie";

/** Whether nothing listens on 127.0.0.1:`port`. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** The ```sh blocks of the README section titled `title` (up to the next "## " heading). */
export function readmeBlocks(readme: string, title: string): string[] {
  const start = readme.split("\n").findIndex((l) => l.trim() === `## ${title}`);
  if (start < 0) return [];
  const lines = readme.split("\n").slice(start + 1);
  const end = lines.findIndex((l) => l.startsWith("## "));
  const section = (end < 0 ? lines : lines.slice(0, end)).join("\n");
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The INSTALL text's commands: its lines indented by two spaces, in order. */
export function installCommands(text: string): string[] {
  return text
    .split("\n")
    .filter((l) => /^ {2}\S/.test(l))
    .map((l) => l.trim());
}

const LABEL = "io.slipway.appliance";

/** What of Slipway's kinds the host holds: labelled containers, networks, volumes; chains; sets. */
function hostListing(): string[] {
  const out = (argv: string[]) => {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    return r.exitCode === 0 ? r.stdout.toString().split("\n").filter(Boolean) : [`(${argv[0]} failed)`];
  };
  // Docker objects as "KIND ID APPLIANCE": whose they are decides what a concurrent run may add.
  const labelled = (kind: string, argv: string[]) =>
    out([
      ...argv,
      "--filter",
      `label=${LABEL}`,
      "--format",
      `{{.${kind === "volume" ? "Name" : "ID"}}} {{.Label "${LABEL}"}}`,
    ]).map((l) => `${kind} ${l}`);
  const lines = [
    ...labelled("container", ["docker", "ps", "-a", "--no-trunc"]),
    ...labelled("network", ["docker", "network", "ls", "--no-trunc"]),
    ...labelled("volume", ["docker", "volume", "ls"]),
    ...out(["ipset", "list", "-n"]).map((l) => `ipset ${l}`),
  ];
  for (const t of ["iptables-save", "ip6tables-save"]) {
    let table = "";
    for (const l of out([t])) {
      if (l.startsWith("*")) table = l.slice(1);
      else if (l.startsWith(":")) lines.push(`${t} ${table} ${l.slice(1).split(" ")[0]}`);
    }
  }
  return lines.sort();
}

const diff = (before: string[], after: string[]) => ({
  added: after.filter((l) => !before.includes(l)),
  removed: before.filter((l) => !after.includes(l)),
});

/**
 * The system's files, except kernel and runtime filesystems, the test's binds, root's home (the
 * README's files; a package never touches a home), apt's and dpkg's own state and logs.
 */
const FILES_SCRIPT = `find / \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \\
  -o -path /repo -o -path /root -o -path /media/bundle -o -path /usr/local/bin/depot \\
  -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/cache/apt -o -path /var/cache/debconf \\
  -o -path /var/cache/ldconfig -o -path /var/log \\) -prune -o -print | sort`;

integrationSuite("system: the .deb in Debian with systemd as PID 1", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-system-"));
  const timings: string[] = [];
  const phase = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      const line = `${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`;
      timings.push(line);
      console.log(`[system] ${line}`);
    }
  };
  const version = currentVersion();
  const projects: string[] = [];
  const machines: Machine[] = [];
  let m!: Machine;
  let debs!: CurrentDebs;
  let previousDeb = "";
  let builderImage = "";
  // The README's commands name these ports: the test site listens on loopback only.
  const port = 8443;
  const buildPort = 8444;
  let taggedDefaultImage = false;
  let hostBefore: string[] = [];
  let filesBefore: string[] = [];
  let hostsFileBefore = "";
  const caFile = join(work, "ca", "ca.pem");
  const url = () => `https://localhost:${port}`;

  /**
   * The test site's /etc/slipway/slipway.toml, written before the package and kept over its
   * conffile (Dpkg::Options --force-confold): loopback ports, the test's builder image, and plain
   * cache volumes (no device-mapper in this kernel; serve warns about it, as the README says).
   */
  const siteConfig = () => `[server]
listen = "127.0.0.1:${port}"
build_listen = "127.0.0.1:${buildPort}"
public_url = "https://localhost:${port}"

[builders]
dockerd_image = "${builderImage}"

[volumes]
encryption = "none"
`;
  const writeSiteConfig = (sys: Machine) => sys.write("/etc/slipway/slipway.toml", siteConfig());

  /** Site setup of a fresh system: the local archive as its only source, non-interactive apt and dpkg, Docker's daemon masked. */
  const prepare = (sys: Machine) => {
    sys.write("/etc/apt/sources.list.d/local.list", "deb [trusted=yes] file:/repo ./\n");
    sys.write(
      "/etc/apt/apt.conf.d/90system-test",
      'APT::Get::Assume-Yes "true";\nAcquire::Languages "none";\nDpkg::Options { "--force-confdef"; "--force-confold"; };\n',
    );
    writeSiteConfig(sys);
    sys.sh(`echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections
      systemctl mask docker.service docker.socket containerd.service >/dev/null 2>&1
      apt-get update -qq`);
  };

  const readyz = (sys: Machine) =>
    sys
      .exec([
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "--cacert",
        "/var/lib/slipway/ca.pem",
        `https://localhost:${port}/readyz`,
      ])
      .out.trim();
  const waitReady = (sys: Machine, what: string) =>
    waitFor(`${what}: /readyz 200 over HTTPS`, () => readyz(sys) === "200", 90_000);

  const api = async (token: string, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${url()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      tls: { ca: readFileSync(caFile, "utf8") },
    });
    const text = await r.text();
    return { status: r.status, json: text.startsWith("{") ? JSON.parse(text) : null, text };
  };
  const adminToken = () => m.sh("cat /var/lib/slipway/initial-admin-token").trim();
  const copyCa = () => {
    mkdirSync(join(work, "ca"), { recursive: true });
    writeFileSync(caFile, m.sh("cat /var/lib/slipway/ca.pem"));
  };
  const newProject = async (name: string) => {
    const admin = adminToken();
    const p = await api(admin, "POST", "/api/v1/orgs/default/projects", { name });
    expect(p.status).toBe(201);
    const id = p.json.id as string;
    projects.push(id);
    return id;
  };
  const projectToken = async (project: string) =>
    (await api(adminToken(), "POST", "/api/v1/tokens", { kind: "project", name: `sys-${Date.now()}`, project })).json
      .token as string;
  const depotBuild = async (project: string, body: string) => {
    const ctx = join(work, `ctx-${Date.now()}`);
    writeBusyboxContext(ctx, body);
    mkdirSync(join(work, "home"), { recursive: true });
    const token = await projectToken(project);
    const p = Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", ctx], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv({ url: url(), dataDir: join(work, "ca") }, join(work, "home"), token),
    });
    const r = await finished(p);
    if (r.code !== 0) console.log(r.log.slice(-4000));
    return r;
  };
  /** The appliance ids this test's systems had (read from their builders' labels). */
  const ourAppliances = new Set<string>();
  const learnAppliance = (builder: string) => {
    const r = Bun.spawnSync(["docker", "inspect", "-f", `{{index .Config.Labels "${LABEL}"}}`, builder], {
      stdout: "pipe",
    });
    const id = r.stdout.toString().trim();
    expect(id.length).toBeGreaterThan(0);
    ourAppliances.add(id);
  };
  const ofOurAppliances = (line: string) =>
    [...ourAppliances].some((id) => {
      const names = policyNames(id);
      return (
        line.endsWith(` ${id}`) ||
        [names.input, names.forward, names.nat].some((c) => line.endsWith(` ${c}`)) ||
        line.startsWith(`ipset ${names.setPrefix}`)
      );
    });
  const builderOf = (project: string) => {
    const r = Bun.spawnSync(["docker", "ps", "-aq", "--no-trunc", "--filter", `label=io.slipway.project=${project}`], {
      stdout: "pipe",
    });
    return r.stdout.toString().split("\n").filter(Boolean);
  };
  /** A dpkg-query field of an installed package ('' when it is not). */
  const dpkgField = (sys: Machine, pkg: string, field: string) =>
    sys.exec(["dpkg-query", "-W", "-f", ["$", "{", field, "}"].join(""), pkg]).out;
  const installed = (sys: Machine) => dpkgField(sys, "slipway", "Status").includes("install ok installed");
  const schemaVersion = () => {
    const db = new Database(join(HOST_DATA_LINK, "slipway.db"), { readonly: true });
    try {
      return (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    } finally {
      db.close();
    }
  };
  const headVersion = () =>
    Math.max(...readdirSync(join(ROOT, "migrations")).map((f) => Number.parseInt(f.split("_")[0]!, 10) || 0));

  beforeAll(async () => {
    await phase("builder image", async () => {
      builderImage = (await ensureDockerdBuilderImage()).ref;
    });
    const sys = await phase("system image and local archive", () =>
      ensureSystemImage((l) => console.log(`[system] ${l}`)),
    );
    console.log(`[system] system image from ${sys.source}`);
    debs = await phase("package this checkout (shared with the package test)", () => currentDebs());
    previousDeb = await phase("package the previous release", () => buildPreviousDeb(join(work, "prev")));
    for (const p of [port, buildPort])
      if (!(await portFree(p))) throw new Error(`port ${p} on 127.0.0.1 is taken: the README's commands need it`);
    // The bundle holds the default builder image by its default name, as the README's import names it.
    if (
      Bun.spawnSync(["docker", "image", "inspect", DEFAULT_BUILDER_IMAGE], { stdout: "ignore", stderr: "ignore" })
        .exitCode !== 0
    ) {
      Bun.spawnSync(["docker", "tag", builderImage, DEFAULT_BUILDER_IMAGE]);
      taggedDefaultImage = true;
    }
    hostBefore = hostListing();
    m = await phase("boot the system", () =>
      startMachine({
        image: sys.image,
        name: `slipway-system-${crypto.randomUUID().slice(0, 8)}`,
        network: "host",
        binds: [
          `${sys.repo}:/repo:ro`,
          `${dirname(debs.amd64)}:/root/pkg:ro`,
          `${join(work, "prev")}:/root/prev:ro`,
          "/var/run/docker.sock:/run/docker.sock",
          `${DEPOT}:/usr/local/bin/depot:ro`, // the README's first build runs the depot CLI on the host
        ],
      }),
    );
    machines.push(m);
    linkHostDataPath(m.hostVarLib()); // its target comes with the package
    await phase("prepare the system", () => prepare(m));
    filesBefore = m.sh(FILES_SCRIPT).split("\n").filter(Boolean);
    hostsFileBefore = m.sh("cat /etc/hosts");
  }, 30 * 60_000);

  afterAll(async () => {
    for (const sys of machines) {
      // The host-network system's purge removes what it made on the host (after a failure midway);
      // the offline one made nothing outside its own network namespace and volume.
      if (sys === m && installed(sys)) sys.exec(["apt-get", "purge", "-y", "-qq", "slipway"]);
      sys.stop();
    }
    unlinkHostDataPath();
    if (taggedDefaultImage) Bun.spawnSync(["docker", "image", "rm", DEFAULT_BUILDER_IMAGE]); // the tag only
    await removeBuildersOf(projects);
    rmSync(work, { recursive: true, force: true });
    console.log(`[system] phases:\n  ${timings.join("\n  ")}`);
  }, 5 * 60_000);

  test(
    "the README's install commands, run verbatim, install the package and its Depends from the archive; the service is active, ready over HTTPS, and its journal carries priorities",
    async () => {
      const readme = readFileSync(join(ROOT, "README.md"), "utf8");
      const blocks = readmeBlocks(readme, "Install on Debian");
      expect(blocks.length).toBeGreaterThan(0);
      // One shell for the section (its blocks share variables), in a directory holding the .deb,
      // without errexit: `slipway doctor` exits 1 on what this container lacks (dm-crypt), as a
      // reader's would; what the commands achieve is checked after.
      const script = `mkdir -p /root/site && cp /root/pkg/*.deb /root/site/ && cd /root/site\n${blocks.join("\n")}`;
      const ran = await phase("install, first login, first build (README)", () =>
        m.exec(["bash", "-c", script], { env: { HOME: "/root" } }),
      );
      const transcript = ran.out + ran.err;
      const shown = () => console.log(`[system] README transcript:\n${transcript.slice(-6000)}`);
      if (ran.code !== 0) shown();
      expect(m.exec(["systemctl", "is-active", "slipway"]).out.trim()).toBe("active");
      expect(dpkgField(m, "slipway", "Version")).toBe(version);
      expect(dpkgField(m, "docker.io", "Status")).toBe("install ok installed"); // a Depends, from the archive
      expect(transcript).toContain("active");
      const greeting = m.exec(["cat", "/root/site/out/greeting.txt"]).out;
      if (greeting !== "hello from slipway\n") shown();
      expect(greeting).toBe("hello from slipway\n"); // the README's first build, exported by the depot CLI
      expect(ran.code).toBe(0); // its last command, `cat out/greeting.txt`
      await phase("ready", () => waitReady(m, "after install"));
      copyCa();

      // journald: -p warning holds warnings and worse only (serve warns about plain volumes), and
      // the same entries appear, in order, among -p debug's, which also has info lines.
      const entries = (p: string) =>
        m
          .sh(`journalctl -u slipway -p ${p} -o json --no-pager`)
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { PRIORITY: string; MESSAGE: string; __CURSOR: string });
      const warnings = entries("warning");
      const all = entries("debug");
      expect(warnings.length).toBeGreaterThan(0);
      for (const w of warnings) expect(Number(w.PRIORITY)).toBeLessThanOrEqual(4);
      expect(all.some((e) => Number(e.PRIORITY) === 6)).toBe(true);
      const cursors = all.map((e) => e.__CURSOR);
      const positions = warnings.map((w) => cursors.indexOf(w.__CURSOR));
      expect(positions.every((p) => p >= 0)).toBe(true);
      expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    },
    10 * 60_000,
  );

  let firstProject = "";
  let firstBuilder = "";

  test(
    "a build through the unchanged depot CLI from the host; its builder runs on the host's engine",
    async () => {
      firstProject = await newProject("system-app");
      const r = await phase("first build", () => depotBuild(firstProject, "RUN echo built-in-the-system > /proof"));
      expect(r.code).toBe(0);
      const builders = builderOf(firstProject);
      expect(builders).toHaveLength(1);
      firstBuilder = builders[0]!;
      learnAppliance(firstBuilder);
    },
    10 * 60_000,
  );

  test(
    "systemctl kill -s KILL: systemd restarts serve, which adopts the running builder",
    async () => {
      const restarts = () => Number(m.sh("systemctl show -p NRestarts --value slipway").trim());
      const before = restarts();
      const oldPid = m.sh("systemctl show -p MainPID --value slipway").trim();
      await phase("kill and restart", async () => {
        m.sh("systemctl kill -s KILL slipway");
        await waitFor("a restart", () => restarts() > before, 60_000);
        await waitFor(
          "active again",
          () => m.exec(["systemctl", "is-active", "slipway"]).out.trim() === "active",
          60_000,
        );
        await waitReady(m, "after the restart");
      });
      const pid = m.sh("systemctl show -p MainPID --value slipway").trim();
      expect(pid).not.toBe(oldPid);
      // The unit's allocator setting reaches the process it runs (packaging/systemd/slipway.service).
      expect(m.sh(`tr '\\0' '\\n' < /proc/${pid}/environ`).split("\n")).toContain("MIMALLOC_PURGE_DELAY=-1");
      expect(builderOf(firstProject)).toEqual([firstBuilder]);
      const r = await phase("build on the adopted builder", () => depotBuild(firstProject, "RUN echo again > /proof2"));
      expect(r.code).toBe(0);
      expect(builderOf(firstProject)).toEqual([firstBuilder]); // adopted, not recreated
      const running = Bun.spawnSync(["docker", "inspect", "-f", "{{.State.Running}}", firstBuilder], {
        stdout: "pipe",
      });
      expect(running.stdout.toString().trim()).toBe("true");
    },
    10 * 60_000,
  );

  test(
    "the watchdog: a serve that stops answering (SIGSTOP) is aborted and restarted by systemd",
    async () => {
      // The unit's 30 s made short for the test by a runtime drop-in, removed afterwards.
      const dropIn = "/run/systemd/system/slipway.service.d";
      m.sh(
        `mkdir -p ${dropIn} && printf '[Service]\\nWatchdogSec=4s\\nTimeoutAbortSec=2s\\n' > ${dropIn}/watchdog.conf && systemctl daemon-reload && systemctl restart slipway`,
      );
      try {
        await waitReady(m, "with the short watchdog");
        expect(m.sh("systemctl show -p WatchdogUSec --value slipway").trim()).toBe("4s");
        const restarts = () => Number(m.sh("systemctl show -p NRestarts --value slipway").trim());
        const before = restarts();
        const hung = m.sh("systemctl show -p MainPID --value slipway").trim();
        await phase("watchdog restart", async () => {
          m.sh(`kill -STOP ${hung}`);
          await waitFor("the watchdog's restart", () => restarts() > before, 60_000);
          await waitReady(m, "after the watchdog's restart");
        });
        expect(m.sh("systemctl show -p MainPID --value slipway").trim()).not.toBe(hung);
        expect(m.sh("journalctl -u slipway --no-pager -o cat")).toContain("Watchdog timeout");
      } finally {
        m.sh(`rm -rf ${dropIn} && systemctl daemon-reload && systemctl restart slipway`);
        await waitReady(m, "with the unit's own watchdog");
      }
    },
    5 * 60_000,
  );

  /** Purge, then autoremove the Depends the package pulled in; the system and host as before. */
  const purgeAndCompare = async (label: string) => {
    await phase(`purge (${label})`, () => m.sh("apt-get purge -y -qq slipway && apt-get autoremove --purge -y -qq"));
    const files = diff(filesBefore, m.sh(FILES_SCRIPT).split("\n").filter(Boolean));
    const slipwayFiles = files.added.filter((f) => /slipway/i.test(f));
    const others = files.added.filter((f) => !/slipway/i.test(f));
    if (others.length > 0)
      console.log(
        `[system] ${others.length} files the Depends left (not autoremoved), e.g.:\n  ${others.slice(0, 8).join("\n  ")}`,
      );
    // Counted, with the first few named: a whole data dir would drown the report.
    const summary = (list: string[]) => ({ count: list.length, first: list.slice(0, 10) });
    expect(summary(slipwayFiles)).toEqual(summary([]));
    // The site's slipway.toml is the package's conffile (kept over its own): purge removes it, by design.
    const removed = files.removed.filter((f) => f !== "/etc/slipway" && f !== "/etc/slipway/slipway.toml");
    expect(summary(removed)).toEqual(summary([]));
    expect(m.sh("cat /etc/hosts")).toBe(hostsFileBefore);
    const host = diff(hostBefore, hostListing());
    // Nothing of this test's appliances stays; in CI (files run one by one) nothing at all was added.
    expect(host.added.filter(ofOurAppliances)).toEqual([]);
    if (REQUIRE_INTEGRATION) expect(host.added).toEqual([]);
    else if (host.added.length > 0)
      console.log(`[system] other appliances' objects appeared meanwhile:\n  ${host.added.join("\n  ")}`);
    // Nothing else went: purge removes this appliance's objects only (named from the id serve
    // wrote to its data dir). On a shared machine other runs' objects come and go by themselves,
    // so there they are named; in CI nothing may have gone.
    if (REQUIRE_INTEGRATION) expect(host.removed).toEqual([]);
    else if (host.removed.length > 0)
      console.log(`[system] objects gone meanwhile (not this test's):\n  ${host.removed.join("\n  ")}`);
  };

  test(
    "apt remove stops the service and keeps the data; apt purge leaves nothing of Slipway's and removes nothing else",
    async () => {
      await phase("remove", () => m.sh("apt-get remove -y -qq slipway"));
      expect(m.exec(["systemctl", "is-active", "slipway"]).out.trim()).not.toBe("active");
      // The unit file is gone (debhelper-style scripts leave it masked until purge).
      expect(m.exec(["test", "-e", "/lib/systemd/system/slipway.service"]).code).not.toBe(0);
      expect(["not-found", "masked"]).toContain(m.sh("systemctl show -p LoadState --value slipway").trim());
      expect(m.sh("ls /var/lib/slipway")).toContain("slipway.db");
      expect(m.sh("ls /var/lib/slipway")).toContain("initial-admin-token");
      expect(builderOf(firstProject)).toEqual([firstBuilder]); // remove leaves builders and their caches
      await purgeAndCompare("after the fresh install");
      expect(m.exec(["test", "-e", "/var/lib/slipway"]).code).not.toBe(0);
    },
    10 * 60_000,
  );

  test(
    "upgrade from the previous release's package: data kept, migrations applied after a backup, a build works",
    async () => {
      writeSiteConfig(m); // purged with the package
      await phase("install the previous release", () =>
        m.sh(`apt-get install -y -qq ${"/root/prev/"}${previousDeb.split("/").pop()}`),
      );
      await waitReady(m, "the previous release");
      copyCa();
      const kept = await newProject("made-before-upgrade");
      const fromVersion = schemaVersion();
      await phase("upgrade", () => m.sh(`cd /root/pkg && apt-get install -y -qq ./slipway_${version}_amd64.deb`));
      await waitReady(m, "after the upgrade");
      expect(dpkgField(m, "slipway", "Version")).toBe(version);
      expect((await api(adminToken(), "GET", `/api/v1/projects/${kept}`)).status).toBe(200);
      expect(schemaVersion()).toBe(headVersion());
      const backups = m
        .sh("ls /var/lib/slipway")
        .split("\n")
        .filter((f) => /^slipway\.db\.v\d+-.*\.bak$/.test(f));
      if (fromVersion < headVersion())
        expect(backups.some((f) => f.startsWith(`slipway.db.v${fromVersion}-`))).toBe(true);
      else console.log(`[system] schema unchanged since the previous release (v${fromVersion}): no backup expected`);
      const r = await phase("build after the upgrade", () => depotBuild(kept, "RUN echo upgraded > /proof"));
      expect(r.code).toBe(0);
      learnAppliance(builderOf(kept)[0]!);
      await purgeAndCompare("after the upgrade");
    },
    15 * 60_000,
  );

  test(
    "the offline bundle installs with no network at all: its INSTALL's commands, verbatim",
    async () => {
      const pkgJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
        scripts: Record<string, string>;
      };
      expect(pkgJson.scripts["package:offline"]).toBeDefined(); // fails until the offline bundle exists
      const out = join(work, "offline");
      await phase("package:offline", () => {
        const r = Bun.spawnSync([process.execPath, "run", "package:offline", "--", "--deb", debs.amd64, "--out", out], {
          cwd: ROOT,
          stdout: "pipe",
          stderr: "pipe",
        });
        if (r.exitCode !== 0) throw new Error(`package:offline failed:\n${r.stderr}${r.stdout}`);
      });
      const bundle = readdirSync(out).find((f) => f.startsWith("slipway-offline_") && f.includes("amd64"))!;
      expect(bundle).toBeDefined();
      const listing = Bun.spawnSync(["tar", "-tzf", join(out, bundle)], { stdout: "pipe" }).stdout.toString();
      const installPath = listing.split("\n").find((l) => l.endsWith("/INSTALL"))!;
      const installText = Bun.spawnSync(["tar", "-xzOf", join(out, bundle), installPath], {
        stdout: "pipe",
      }).stdout.toString();
      const installed3 = installCommands(installText);
      expect(installed3.length).toBe(3);
      // The README's air-gapped section when it exists (it must carry INSTALL's commands), else INSTALL's.
      const readme = readFileSync(join(ROOT, "README.md"), "utf8");
      const fromReadme = readmeBlocks(readme, "Air-gapped install");
      for (const c of fromReadme.length > 0 ? installed3 : []) expect(fromReadme.join("\n")).toContain(c);
      if (fromReadme.length === 0)
        console.log("[system] README.md has no '## Air-gapped install' section yet: INSTALL's commands run");
      const commands = fromReadme.length > 0 ? fromReadme : installed3;

      const sys = ensureSystemImage();
      const offline = await phase("boot the offline system", () =>
        startMachine({
          image: sys.image,
          name: `slipway-system-offline-${crypto.randomUUID().slice(0, 8)}`,
          network: "none",
          binds: [`${sys.repo}:/repo:ro`, `${out}:/media/bundle:ro`, "/var/run/docker.sock:/run/docker.sock"],
        }),
      );
      machines.push(offline);
      prepare(offline);
      // The site's own media: the Depends are installed before the bundle is used.
      await phase("offline: Depends from the site's media", () =>
        offline.sh("apt-get install -y -qq --no-install-recommends docker.io iptables ipset cryptsetup-bin"),
      );
      expect(offline.sh("ip -o link show | awk -F': ' '{print $2}'").trim()).toBe("lo");
      const ran = await phase("offline: INSTALL's commands", () =>
        offline.sh(
          `mkdir -p /root/site && cp /media/bundle/${bundle} /root/site/ && cd /root/site\n${commands.join("\n")}`,
        ),
      );
      expect(offline.exec(["systemctl", "is-active", "slipway"]).out.trim()).toBe("active");
      await waitReady(offline, "the offline install");
      expect(ran).toMatch(/OK/); // sha256sum -c's verdicts
      expect(ran).toMatch(/verified \S+ against \S*SHA256SUMS/); // builder-image import checked the image
    },
    15 * 60_000,
  );
});
