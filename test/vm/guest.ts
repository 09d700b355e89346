/**
 * @module test/vm/guest
 * Everything the real-kernel volume test needs to boot a guest: the Debian cloud kernel (fetched
 * from the Debian mirror with `apt-get download`, cached outside the repository), and an
 * initramfs assembled at test time from this host's programs (cryptsetup, mke2fs, util-linux,
 * busybox for /init and insmod), their libraries (found with ldd), the kernel modules dm-crypt
 * needs (dependencies read from each module's modinfo), and the compiled `slipway` binary.
 * The cpio archive (newc) is written here, so no cpio program is needed.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";

export const CACHE_DIR =
  process.env.SLIPWAY_VM_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "slipway-vm");
/** dm-crypt, its ciphers (aes-xts through AES-NI), loop devices for image files, AF_ALG for keyslots. */
export const MODULES = [
  "loop",
  "dm-mod",
  "dm-crypt",
  "gf128mul",
  "xts",
  "ecb",
  "cryptd",
  "crypto_simd",
  "aesni-intel",
  "af_alg",
  "algif_skcipher",
];
/** Host programs the guest runs, by the name the volume manager calls them. */
export const PROGRAMS = ["cryptsetup", "dmsetup", "mkfs.ext4", "resize2fs", "mount", "umount", "losetup"];

function sh(argv: string[], cwd?: string): { code: number; out: string } {
  const r = Bun.spawnSync(argv, {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LC_ALL: "C", DEBIAN_FRONTEND: "noninteractive" },
  });
  return { code: r.exitCode ?? 1, out: r.stdout.toString() + r.stderr.toString() };
}

export function which(p: string): string | null {
  return Bun.which(p, { PATH: `${process.env.PATH ?? ""}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin` });
}

/** What the host lacks to run the VM test, or null. */
export function missingPrerequisites(): string | null {
  const tools = ["qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb", "busybox", "ldd", ...PROGRAMS];
  const missing = tools.filter((t) => !which(t));
  if (missing.length)
    return `not installed: ${missing.join(", ")} (apt-get install qemu-system-x86 busybox-static cryptsetup-bin e2fsprogs)`;
  return null;
}

/** The versioned package behind linux-image-cloud-amd64, e.g. linux-image-6.1.0-56-cloud-amd64. */
function kernelPackage(): string {
  const find = () =>
    /Depends: (linux-image-\S+-cloud-amd64)/.exec(sh(["apt-cache", "depends", "linux-image-cloud-amd64"]).out)?.[1];
  let pkg = find();
  if (!pkg) {
    // A clean machine may have no package lists yet.
    sh(["apt-get", "update", "-qq"]);
    pkg = find();
  }
  if (!pkg) throw new Error("apt-cache knows no linux-image-cloud-amd64 (is a Debian amd64 mirror configured?)");
  return pkg;
}

export interface Kernel {
  vmlinuz: string;
  modules: string;
  release: string;
  package: string;
}

/** Downloads (once) and unpacks the cloud kernel package into the cache. */
export function fetchKernel(): Kernel {
  try {
    return fetchKernelOnce();
  } catch {
    // Stale package lists name a version the mirror no longer has: refresh and resolve again.
    sh(["apt-get", "update", "-qq"]);
    return fetchKernelOnce();
  }
}

function fetchKernelOnce(): Kernel {
  const pkg = kernelPackage();
  const dir = join(CACHE_DIR, pkg);
  const root = join(dir, "root");
  if (!existsSync(join(dir, ".done"))) {
    mkdirSync(dir, { recursive: true });
    const r = sh(["apt-get", "download", "-o", "APT::Sandbox::User=root", pkg], dir);
    const deb = readdirSync(dir).find((f) => f.endsWith(".deb"));
    if (r.code !== 0 || !deb) throw new Error(`apt-get download ${pkg} failed: ${r.out.slice(-500)}`);
    const x = sh(["dpkg-deb", "-x", join(dir, deb), root]);
    if (x.code !== 0) throw new Error(`dpkg-deb -x failed: ${x.out}`);
    writeFileSync(join(dir, ".done"), new Date().toISOString());
  }
  const boot = join(root, "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"))!;
  const release = vmlinuz.slice("vmlinuz-".length);
  return { vmlinuz: join(boot, vmlinuz), modules: join(root, "lib", "modules", release), release, package: pkg };
}

/** Module files to insmod, dependencies first (from each module's `depends=` modinfo field). */
export function moduleLoadOrder(modulesDir: string, wanted: string[]): string[] {
  const norm = (n: string) => n.replace(/-/g, "_");
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith(".ko")) files.set(norm(e.slice(0, -3)), p);
    }
  };
  walk(join(modulesDir, "kernel"));
  const builtin = new Set(
    readFileSync(join(modulesDir, "modules.builtin"), "utf8")
      .split("\n")
      .map((l) => norm(basename(l).replace(/\.ko$/, ""))),
  );
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    const n = norm(name);
    if (seen.has(n) || builtin.has(n)) return;
    seen.add(n);
    const file = files.get(n);
    if (!file) throw new Error(`kernel module ${name} is neither built in nor in ${modulesDir}`);
    const deps = /\0depends=([^\0]*)\0/.exec(readFileSync(file, "latin1"))?.[1] ?? "";
    for (const d of deps.split(",").filter(Boolean)) visit(d);
    order.push(file);
  };
  wanted.forEach(visit);
  return order;
}

/** Shared libraries an ELF program needs, per ldd (including the dynamic loader). */
function libraries(program: string): string[] {
  const r = sh(["ldd", program]);
  if (r.code !== 0) return []; // static
  const libs: string[] = [];
  for (const line of r.out.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

type Entry = { path: string; mode: number; data?: Uint8Array; link?: string };

/** A cpio "newc" archive: what the kernel unpacks as its initramfs. */
export function cpioNewc(entries: Entry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    chunks.push(b);
    size += b.length;
  };
  const pad = () => {
    const n = (4 - (size % 4)) % 4;
    if (n) push(new Uint8Array(n));
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  let ino = 1;
  const add = (name: string, mode: number, data: Uint8Array) => {
    const nameBytes = new TextEncoder().encode(`${name}\0`);
    const header = `070701${[ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0].map(hex).join("")}`;
    push(new TextEncoder().encode(header));
    push(nameBytes);
    pad();
    push(data);
    pad();
  };
  for (const e of entries) {
    const name = e.path.replace(/^\//, "");
    if (e.link !== undefined) add(name, 0o120777, new TextEncoder().encode(e.link));
    else if (e.data) add(name, 0o100000 | e.mode, e.data);
    else add(name, 0o040000 | e.mode, new Uint8Array(0));
  }
  add("TRAILER!!!", 0, new Uint8Array(0));
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export const INIT = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=1024m tmpfs /tmp
while read m; do insmod "$m" || echo "SLIPWAY-VM insmod FAIL 0 $m"; done < /modules.load
read up idle < /proc/uptime
echo "SLIPWAY-VM boot ok 0 {\\"uptime_s\\":$up}"
/bin/slipway __volume-selftest --dir /tmp/selftest
echo "SLIPWAY-VM exit $?"
echo o > /proc/sysrq-trigger
while :; do sleep 1; done
`;

/** Assembles the initramfs: returns the archive's bytes and what went into it. */
export function buildInitramfs(
  kernel: Kernel,
  slipway: string,
): { cpio: Uint8Array; files: number; modules: string[] } {
  const entries = new Map<string, Entry>();
  const dir = (p: string) => {
    if (p === "/" || entries.has(p)) return;
    dir(dirname(p));
    entries.set(p, { path: p, mode: 0o755 });
  };
  const file = (p: string, data: Uint8Array, mode = 0o755) => {
    dir(dirname(p));
    entries.set(p, { path: p, mode, data });
  };
  const link = (p: string, target: string) => {
    dir(dirname(p));
    entries.set(p, { path: p, mode: 0o777, link: target });
  };
  const copy = (hostPath: string, guestPath = hostPath) => {
    if (entries.has(guestPath)) return;
    file(guestPath, new Uint8Array(readFileSync(hostPath)), statSync(hostPath).mode & 0o777);
  };
  const program = (hostPath: string, guestPath: string) => {
    copy(realpathSync(hostPath), guestPath);
    for (const lib of libraries(hostPath)) copy(lib);
  };

  for (const d of ["/proc", "/sys", "/dev", "/tmp", "/run", "/etc"]) dir(d);
  // busybox provides the shell, insmod and the rest of /init.
  const busybox = which("busybox")!;
  program(busybox, "/bin/busybox");
  for (const applet of ["sh", "insmod", "sleep", "mkdir"]) link(`/bin/${applet}`, "busybox");
  for (const name of PROGRAMS) {
    const host = which(name)!;
    const real = basename(realpathSync(host));
    // mkfs.ext4 is mke2fs under another name (it reads argv[0]): keep the link.
    program(host, `/usr/sbin/${real}`);
    if (real !== name) link(`/usr/sbin/${name}`, real);
  }
  if (existsSync("/etc/mke2fs.conf")) copy("/etc/mke2fs.conf");
  // glibc loads libgcc_s at run time for thread cancellation (cryptsetup, bun).
  for (const extra of ["/lib/x86_64-linux-gnu/libgcc_s.so.1"]) if (existsSync(extra)) copy(extra);
  program(slipway, "/bin/slipway");

  const modules = moduleLoadOrder(kernel.modules, MODULES);
  const guestModules = modules.map((m) => `/lib/modules/${basename(m)}`);
  modules.forEach((m, i) => copy(m, guestModules[i]));
  file("/modules.load", new TextEncoder().encode(`${guestModules.join("\n")}\n`), 0o644);
  file("/init", new TextEncoder().encode(INIT), 0o755);
  const list = [...entries.values()];
  return { cpio: cpioNewc(list), files: list.length, modules: modules.map((m) => basename(m)) };
}
