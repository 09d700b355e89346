/**
 * @module test/e2e/package
 * The .deb packages as built by scripts/package.ts from the compiled binaries: control fields
 * (Depends and Recommends against doctor's package list), files and modes, the conffile, man
 * pages, completions, the SBOM against the bundle and the binary's own `version --json`, the
 * maintainer scripts' syntax, lintian, and the postrm's purge functions run against real
 * objects: Docker objects carrying a test label (a decoy without it survives), and chains and
 * sets inside a network namespace this test creates. Installing in a booted systemd is the
 * system test's part.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { COMMANDS } from "../../src/cli/index.ts";
import { commandOptions } from "../../src/cli/help.ts";
import { dependencyClosure } from "../../src/cli/sbom.ts";
import { HOST_PACKAGES, controlField } from "../../src/doctor/packages.ts";
import { BUILDER_LABELS } from "../../src/builders/engine.ts";
import { APPLIANCE_ID_FILE } from "../../src/appliance/state.ts";
import { ROOT } from "../support/binary.ts";
import { currentDebs } from "../system/packages.ts";
import { integrationSuite } from "../support/integration.ts";

const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const ARCHES = ["amd64", "arm64"] as const;

function run(argv: string[], opts: { stdin?: string; cwd?: string } = {}): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(argv, {
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "ignore" : Buffer.from(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function must(argv: string[], opts: { stdin?: string; cwd?: string } = {}): string {
  const r = run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.err}`);
  return r.out;
}

const missing = !Bun.which("dpkg-deb")
  ? "dpkg-deb is not installed (apt-get install dpkg)"
  : !Bun.which("lintian")
    ? "lintian is not installed (apt-get install lintian)"
    : null;

integrationSuite("the .deb packages", missing, () => {
  let out: string;
  const debs: Record<string, string> = {};
  const trees: Record<string, string> = {};

  beforeAll(() => {
    // Built once per run, shared with the system test (which installs the amd64 one).
    const built = currentDebs();
    out = mkdtempSync(join(tmpdir(), "slipway-pkg-"));
    for (const arch of ARCHES) {
      debs[arch] = built[arch];
      trees[arch] = join(out, `tree-${arch}`);
      mkdirSync(trees[arch]!);
      must(["dpkg-deb", "-x", debs[arch]!, trees[arch]!]);
      must(["dpkg-deb", "-e", debs[arch]!, join(trees[arch]!, "DEBIAN")]);
    }
  }, 600_000);
  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  const field = (arch: string, name: string) => must(["dpkg-deb", "-f", debs[arch]!, name]).trim();

  test("control fields: name, version, architecture, section; Depends and Recommends are doctor's list", () => {
    for (const arch of ARCHES) {
      expect(field(arch, "Package")).toBe("slipway");
      expect(field(arch, "Version")).toBe(VERSION);
      expect(field(arch, "Architecture")).toBe(arch);
      expect(field(arch, "Section")).toBe("admin");
      expect(field(arch, "Priority")).toBe("optional");
      expect(field(arch, "Maintainer")).toMatch(/<.+@.+>/);
      expect(field(arch, "Description")).toMatch(/^self-hosted build appliance/);
      expect(Number(field(arch, "Installed-Size"))).toBeGreaterThan(100_000); // KiB: the binary alone is ~120 MB
      expect(field(arch, "Depends")).toMatch(/^libc6 \(>= 2\.\d+\), /);
      expect(field(arch, "Depends").replace(/^libc6 \([^)]*\), /, "")).toBe(controlField("depends"));
      expect(field(arch, "Recommends")).toBe(controlField("recommends"));
    }
    const depends = field("amd64", "Depends");
    for (const p of ["docker.io | docker-ce", "iptables", "ipset", "cryptsetup-bin", "ca-certificates"])
      expect(depends.split(", ")).toContain(p);
    expect(field("amd64", "Recommends").split(", ")).toEqual(
      expect.arrayContaining(["qemu-user-static", "debootstrap"]),
    );
  });

  test("every package doctor and the code it calls tell the admin to install is in the package list", () => {
    // The fixes doctor prints come from these files (its checks, and the capabilities' probes it reports).
    const files = [
      "src/doctor/checks.ts",
      "src/volumes/detect.ts",
      "src/volumes/doctor.ts",
      "src/builders/emulation.ts",
      "src/builders/image/service.ts",
      "src/registry/process.ts",
    ];
    const named = new Set<string>();
    for (const f of files)
      for (const m of readFileSync(join(ROOT, f), "utf8").matchAll(/apt-get install ([a-z0-9.+ -]+)/g))
        for (const p of m[1]!.trim().split(/\s+/)) named.add(p);
    expect(named.size).toBeGreaterThan(5);
    const listed = HOST_PACKAGES.filter((p) => p.need !== "suggests").flatMap((p) => p.packages);
    for (const p of named) expect({ package: p, listed: listed.includes(p) }).toEqual({ package: p, listed: true });
  });

  test("files, modes and the conffile", () => {
    for (const arch of ARCHES) {
      const list = must(["dpkg-deb", "-c", debs[arch]!])
        .split("\n")
        .filter(Boolean)
        .map((l) => {
          const [mode, owner, , , , ...rest] = l.split(/\s+/);
          return { mode, owner, path: rest.join(" ").replace(/^\./, "") };
        });
      const at = (p: string) => list.find((e) => e.path === p);
      expect(at("/usr/bin/slipway")).toMatchObject({ mode: "-rwxr-xr-x", owner: "root/root" });
      for (const p of [
        "/usr/lib/systemd/system/slipway.service",
        "/usr/lib/systemd/system/slipway-agent.service",
        "/etc/slipway/slipway.toml",
        "/usr/share/bash-completion/completions/slipway",
        "/usr/share/zsh/vendor-completions/_slipway",
        "/usr/share/fish/vendor_completions.d/slipway.fish",
        "/usr/share/doc/slipway/sbom.cdx.json",
        "/usr/share/doc/slipway/copyright",
        "/usr/share/doc/slipway/changelog.gz",
        "/usr/share/man/man1/slipway.1.gz",
      ])
        expect({ p, entry: at(p) }).toMatchObject({ p, entry: { mode: "-rw-r--r--", owner: "root/root" } });
      for (const e of list) expect(e.owner).toBe("root/root");
      for (const e of list.filter((x) => x.mode!.startsWith("d"))) expect(e.mode).toBe("drwxr-xr-x");
      expect(readFileSync(join(trees[arch]!, "DEBIAN", "conffiles"), "utf8")).toBe("/etc/slipway/slipway.toml\n");
      const elf = readFileSync(join(trees[arch]!, "usr/bin/slipway")).subarray(0, 20);
      expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
      expect(elf.readUInt16LE(18)).toBe(arch === "amd64" ? 62 : 183); // e_machine: x86-64, AArch64
    }
  });

  test("man pages: slipway(1) and one per listed command, each with its options", () => {
    const dir = join(trees.amd64!, "usr/share/man/man1");
    const pages = readdirSync(dir).sort();
    expect(pages).toEqual(["slipway.1.gz", ...COMMANDS.map((c) => `slipway-${c.name}.1.gz`)].sort());
    expect(pages).not.toContain("slipway-volume-selftest.1.gz");
    for (const c of COMMANDS) {
      const gz = readFileSync(join(dir, `slipway-${c.name}.1.gz`));
      expect(gz[9]).toBe(3); // gzip header OS field: Unix; -n leaves the name and time out
      expect(gz.readUInt32LE(4)).toBe(0);
      const roff = gunzipSync(gz).toString();
      expect(roff.startsWith(`.TH SLIPWAY-${c.name.toUpperCase()} 1 `)).toBe(true);
      for (const [flag] of commandOptions(c)) expect(roff).toContain(`.B ${flag.replaceAll("-", "\\-")}`);
    }
    const top = gunzipSync(readFileSync(join(dir, "slipway.1.gz"))).toString();
    for (const c of COMMANDS) expect(top).toContain(`.BR slipway\\-${c.name.replaceAll("-", "\\-")} (1)`);
    if (Bun.which("man")) {
      const r = run(["man", "-l", join(dir, "slipway-serve.1.gz")]);
      expect(r.code).toBe(0);
      expect(r.out).toContain("--build-listen");
    }
  });

  test("the installed bash completion parses and completes `slipway buil`", () => {
    const script = join(trees.amd64!, "usr/share/bash-completion/completions/slipway");
    expect(run(["bash", "-n", script]).code).toBe(0);
    const r = must([
      "bash",
      "--norc",
      "-c",
      `. '${script}'; complete -p slipway; COMP_WORDS=(slipway buil); COMP_CWORD=1; _slipway; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ]);
    const [registered, ...words] = r.trim().split("\n");
    expect(registered).toBe("complete -o default -F _slipway slipway");
    expect(words.sort()).toEqual(["build", "builder-image", "buildkit-env", "builds"]);
    for (const [shell, file] of [
      ["zsh", "usr/share/zsh/vendor-completions/_slipway"],
      ["fish", "usr/share/fish/vendor_completions.d/slipway.fish"],
    ] as const) {
      const text = readFileSync(join(trees.amd64!, file), "utf8");
      expect(text).toContain("builder-image");
      if (Bun.which(shell)) expect(run([shell, "-n", join(trees.amd64!, file)]).code).toBe(0);
    }
  });

  test("SBOM: CycloneDX 1.5 naming the whole closure with licences; the bundle and the binary agree", () => {
    const sbom = JSON.parse(readFileSync(join(trees.amd64!, "usr/share/doc/slipway/sbom.cdx.json"), "utf8")) as {
      bomFormat: string;
      specVersion: string;
      metadata: { component: { name: string; version: string } };
      components: { name: string; version: string; purl: string; licenses: unknown[]; type: string }[];
    };
    expect(sbom.bomFormat).toBe("CycloneDX");
    expect(sbom.specVersion).toBe("1.5");
    expect(sbom.metadata.component).toMatchObject({ name: "slipway", version: VERSION });
    const key = (c: { name: string; version: string }) => `${c.name}@${c.version}`;
    const listed = new Set(sbom.components.map(key));
    for (const c of dependencyClosure(ROOT)) expect(listed.has(key(c))).toBe(true);
    expect(sbom.components.find((c) => c.name === "bun")).toMatchObject({ type: "platform", version: Bun.version });
    for (const c of sbom.components) {
      expect(c.licenses.length).toBe(1);
      expect(JSON.stringify(c.licenses)).not.toContain("NOASSERTION");
      expect(c.purl).toBe(`pkg:npm/${c.name.replace(/^@/, "%40")}@${c.version}`);
    }
    // Every package the server bundle took a file from (bun build's metafile) is listed.
    const meta = JSON.parse(readFileSync(join(ROOT, "dist", "slipway.meta.json"), "utf8")) as {
      inputs: Record<string, unknown>;
    };
    const names = new Set(sbom.components.map((c) => c.name));
    const bundled = new Set<string>();
    for (const path of Object.keys(meta.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path.slice(path.lastIndexOf("node_modules/")));
      if (m) bundled.add(m[1]!);
    }
    expect(bundled.size).toBeGreaterThan(10);
    for (const n of bundled) expect({ n, listed: names.has(n) }).toEqual({ n, listed: true });
    // The packaged binary says the same.
    const v = JSON.parse(must([join(trees.amd64!, "usr/bin/slipway"), "version", "--json"])) as {
      version: string;
      components: { name: string; version: string; license: string; purl: string }[];
    };
    expect(v.version).toBe(VERSION);
    expect(v.components.map(key).sort()).toEqual([...listed].sort());
  });

  test("maintainer scripts: POSIX sh, every placeholder filled", () => {
    for (const arch of ARCHES)
      for (const s of ["postinst", "prerm", "postrm"]) {
        const file = join(trees[arch]!, "DEBIAN", s);
        expect((statSync(file).mode & 0o777).toString(8)).toBe("755");
        const text = readFileSync(file, "utf8");
        expect(text.startsWith("#!/bin/sh\n")).toBe(true);
        expect(text).toContain("set -e");
        expect(text).not.toMatch(/@[A-Z_]+@/);
        for (const shell of ["sh", "dash"].filter((x) => Bun.which(x))) expect(run([shell, "-n", file]).err).toBe("");
        if (Bun.which("checkbashisms")) expect(run(["checkbashisms", file]).code).toBe(0);
      }
    const postrm = readFileSync(join(trees.amd64!, "DEBIAN", "postrm"), "utf8");
    expect(postrm).toContain(`DOCKER_LABEL='${BUILDER_LABELS.appliance}'`);
  });

  test("lintian: no error and no warning on either package", async () => {
    const runs = ARCHES.map(async (arch) => {
      const p = Bun.spawn(["lintian", "--tag-display-limit", "0", debs[arch]!], { stdout: "pipe", stderr: "pipe" });
      const text = await new Response(p.stdout).text();
      await p.exited;
      // Errors and warnings alike: the accepted ones are overridden in packaging/deb/lintian-overrides, each with its reason.
      return { arch, errors: text.split("\n").filter((l) => /^[EW]: /.test(l)) };
    });
    for (const r of await Promise.all(runs)) expect(r).toEqual({ arch: r.arch, errors: [] });
  }, 300_000);

  describe("postrm purge against real objects", () => {
    const id = crypto.randomUUID().slice(0, 8);
    /** The postrm's definitions (everything above its main case), to call one function at a time. */
    const functions = () => {
      const text = readFileSync(join(trees.amd64!, "DEBIAN", "postrm"), "utf8");
      return text.slice(0, text.indexOf("\n# main\n"));
    };

    test("/etc/hosts: only the agent's block goes", () => {
      const { HOSTS_BEGIN, HOSTS_END } = Object.fromEntries(
        [...functions().matchAll(/^(HOSTS_BEGIN|HOSTS_END)='([^']*)'$/gm)].map((m) => [m[1], m[2]]),
      );
      const file = join(out, "hosts");
      writeFileSync(file, `127.0.0.1 localhost\n${HOSTS_BEGIN}\n10.0.0.1 a.example\n${HOSTS_END}\n::1 localhost\n`);
      must(["sh", "-c", `${functions()}\npurge_hosts_block '${file}'`]);
      expect(readFileSync(file, "utf8")).toBe("127.0.0.1 localhost\n::1 localhost\n");
    });

    const netns = `slwpkg${id}`;
    const firewall = Bun.which("ip") && Bun.which("iptables-restore") && Bun.which("ipset") && process.getuid?.() === 0;
    if (firewall)
      test("chains and sets: this appliance's and the agent's go with the jumps to them; another appliance's and a stranger's stay (in a namespace)", () => {
        must(["ip", "netns", "add", netns]);
        try {
          const ns = (argv: string[], stdin?: string) => must(["ip", "netns", "exec", netns, ...argv], { stdin });
          for (const s of [
            "slwbabcd1234_allow_4 hash:net",
            "slw_a1_4 hash:net",
            "slwx_dns_6 hash:net family inet6",
            "slwbffff0000_allow_4 hash:net",
            "other_4 hash:net",
          ])
            ns(["ipset", "create", ...s.split(" ")]);
          ns(
            ["iptables-restore", "--noflush"],
            [
              "*filter",
              ":SLWB_ABCD1234_IN - [0:0]",
              ":SLWB_ABCD1234_FWD - [0:0]",
              ":SLIPWAY_EGRESS - [0:0]",
              ":SLIPWAY_NEWNET_X - [0:0]",
              ":OTHER - [0:0]",
              ":SLWB_FFFF0000_IN - [0:0]",
              "-A INPUT -i sbffff0000+ -j SLWB_FFFF0000_IN",
              "-A INPUT -i sbabcd1234+ -j SLWB_ABCD1234_IN",
              '-A FORWARD -m comment --comment "slipway egress" -j SLIPWAY_EGRESS',
              "-A FORWARD -i sbabcd1234+ -j SLWB_ABCD1234_FWD",
              "-A INPUT -j OTHER",
              "-A SLIPWAY_EGRESS -j SLIPWAY_NEWNET_X",
              "-A SLWB_ABCD1234_IN -m set --match-set slwbabcd1234_allow_4 src -j ACCEPT",
              "-A SLIPWAY_EGRESS -m set --match-set slw_a1_4 dst -j ACCEPT",
              "-A OTHER -m set --match-set other_4 src -j ACCEPT",
              "COMMIT",
              "*nat",
              ":SLWB_ABCD1234_NAT - [0:0]",
              "-A PREROUTING -i sbabcd1234+ -j SLWB_ABCD1234_NAT",
              "COMMIT",
              "",
            ].join("\n"),
          );
          ns(
            ["ip6tables-restore", "--noflush"],
            "*filter\n:SLWB_ABCD1234_IN - [0:0]\n-A INPUT -i sbabcd1234+ -j SLWB_ABCD1234_IN\nCOMMIT\n",
          );
          // The data dir names this appliance (id ending in abcd1234, as serve writes it).
          const dataDir = join(out, `fw-data-${id}`);
          mkdirSync(dataDir, { recursive: true });
          writeFileSync(join(dataDir, APPLIANCE_ID_FILE), "0123abcd1234\n");
          const script = [
            functions(),
            `builder_patterns "$(appliance_id '${dataDir}')"`,
            'chain_pattern="$AGENT_CHAINS|$BUILDER_CHAIN_PATTERN"',
            'set_pattern="$AGENT_SETS|$BUILDER_SET_PATTERN"',
            'purge_chains iptables "$chain_pattern"',
            'purge_chains ip6tables "$chain_pattern"',
            'purge_sets "$set_pattern"',
          ].join("\n");
          ns(["sh", "-c", script]);
          const v4 = ns(["iptables-save"]);
          const v6 = ns(["ip6tables-save"]);
          expect(`${v4}${v6}`).not.toMatch(/SLWB_ABCD1234|SLIPWAY_/);
          expect(v4).toContain(":OTHER ");
          expect(v4).toContain("-A INPUT -j OTHER");
          expect(v4).toContain("--match-set other_4 src");
          expect(v4).toContain("-A INPUT -i sbffff0000+ -j SLWB_FFFF0000_IN");
          expect(ns(["ipset", "list", "-n"]).trim().split("\n").sort()).toEqual([
            "other_4",
            "slwbffff0000_allow_4",
            "slwx_dns_6",
          ]);
        } finally {
          run(["ip", "netns", "delete", netns]);
        }
      });

    const loops = Bun.which("losetup") !== null && process.getuid?.() === 0;
    if (loops)
      test("cache volumes: the loop device behind an image file under the data dir is detached", () => {
        const dataDir = join(out, "data");
        const image = join(dataDir, "volumes", "images", `pkgtest-${id}.img`);
        mkdirSync(join(dataDir, "volumes", "images"), { recursive: true });
        mkdirSync(join(dataDir, "volumes", "mnt"), { recursive: true });
        writeFileSync(image, Buffer.alloc(1024 * 1024));
        const loop = must(["losetup", "--find", "--show", image]).trim();
        try {
          expect(must(["losetup", "-j", image])).toContain(loop);
          must(["sh", "-c", `${functions()}\npurge_volumes '${dataDir}'`]);
          expect(must(["losetup", "-j", image]).trim()).toBe("");
        } finally {
          run(["losetup", "-d", loop]);
        }
      });

    const dockerUp = Bun.which("docker") !== null && run(["docker", "info"]).code === 0;
    if (dockerUp)
      test("Docker: labelled containers, networks and volumes go; unlabelled ones stay", () => {
        const label = `${BUILDER_LABELS.appliance}=pkgtest-${id}`;
        const image = `slipway-pkgtest:${id}`;
        const decoy = `slipway-pkgtest-decoy-${id}`;
        const rootfs = join(out, "rootfs");
        mkdirSync(rootfs);
        writeFileSync(join(rootfs, "hello"), "");
        must(["sh", "-c", `tar -C '${rootfs}' -c . | docker import - '${image}'`]);
        try {
          const ours = must(["docker", "create", "--label", label, image, "/hello"]).trim();
          const theirs = must(["docker", "create", "--name", decoy, image, "/hello"]).trim();
          // Another appliance's builder on the same engine stays.
          const otherLabel = `${BUILDER_LABELS.appliance}=pkgtest-other-${id}`;
          const other = must([
            "docker",
            "create",
            "--name",
            `${decoy}-other`,
            "--label",
            otherLabel,
            image,
            "/hello",
          ]).trim();
          const net = must(["docker", "network", "create", "--label", label, `slipway-pkgtest-${id}`]).trim();
          const netDecoy = must(["docker", "network", "create", `${decoy}-net`]).trim();
          const vol = must(["docker", "volume", "create", "--label", label, `slipway-pkgtest-${id}`]).trim();
          const volDecoy = must(["docker", "volume", "create", `${decoy}-vol`]).trim();
          must(["sh", "-c", `${functions()}\npurge_docker '${label}'`]);
          const exists = (kind: string, ref: string) => run(["docker", kind, "inspect", ref]).code === 0;
          expect([exists("container", ours), exists("network", net), exists("volume", vol)]).toEqual([
            false,
            false,
            false,
          ]);
          expect([
            exists("container", theirs),
            exists("container", other),
            exists("network", netDecoy),
            exists("volume", volDecoy),
          ]).toEqual([true, true, true, true]);
        } finally {
          run(["docker", "rm", "-f", decoy, `${decoy}-other`]);
          run(["docker", "network", "rm", `${decoy}-net`]);
          run(["docker", "volume", "rm", `${decoy}-vol`]);
          run(["docker", "image", "rm", "-f", image]);
        }
      });
  });
});
