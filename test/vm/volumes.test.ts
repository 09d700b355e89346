/**
 * @module test/vm/volumes.test
 * LUKS cache volumes in a real kernel. The kernels CI and development run on have no
 * device-mapper, so this boots a Debian cloud kernel under qemu (TCG) with an initramfs holding
 * the compiled `slipway`, cryptsetup, mkfs and the dm-crypt modules, and runs the volume manager's
 * self-test inside (`slipway __volume-selftest`): create → marker → close → raw image lacks the
 * marker → reopen with the stored key → wrong key fails → rotate → reset (old key opens nothing)
 * → grow → a killed process's volume recovered, a half-created one recreated → no key material
 * in argv, logs or the database. The guest prints one line per step on the serial console; each
 * is asserted here. Run alone with `bun run test:vm`.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { integrationSuite } from "../support/integration.ts";
import { slipwayBinary } from "../support/binary.ts";
import { buildInitramfs, fetchKernel, missingPrerequisites } from "./guest.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-vm-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const STEPS = [
  "boot",
  "create",
  "header",
  "write-marker",
  "close",
  "raw-image-lacks-marker",
  "reopen-with-stored-key",
  "wrong-key-fails",
  "rotate-key",
  "reset",
  "grow",
  "crash-recovery",
  "no-key-material",
  "total",
];

interface StepLine {
  status: "ok" | "FAIL";
  ms: number;
  detail: string;
}

integrationSuite("LUKS volumes in a real kernel (qemu)", missingPrerequisites(), () => {
  test("the volume manager's life cycle, inside a Debian cloud kernel", async () => {
    const t0 = performance.now();
    const timings: Record<string, number> = {};
    const binary = slipwayBinary();
    timings["build slipway"] = performance.now() - t0;

    let t = performance.now();
    const kernel = fetchKernel();
    timings["fetch kernel"] = performance.now() - t;

    t = performance.now();
    const initrd = buildInitramfs(kernel, binary);
    const initrdPath = join(work, "initrd.cpio");
    writeFileSync(initrdPath, initrd.cpio);
    timings["assemble initramfs"] = performance.now() - t;

    t = performance.now();
    const qemu = Bun.spawn(
      [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "2048",
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
        "-kernel",
        kernel.vmlinuz,
        "-initrd",
        initrdPath,
        "-append",
        "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init",
      ],
      { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
    );
    const killer = setTimeout(() => qemu.kill("SIGKILL"), 270_000);
    const [console_] = await Promise.all([
      new Response(qemu.stdout).text(),
      new Response(qemu.stderr).text(),
      qemu.exited,
    ]);
    clearTimeout(killer);
    timings["guest (boot + self-test)"] = performance.now() - t;

    const steps = new Map<string, StepLine>();
    for (const raw of console_.split("\n")) {
      const m = /SLIPWAY-VM (\S+) (ok|FAIL) (\d+) ?(.*)$/.exec(raw.replace(/\r/g, ""));
      if (m) steps.set(m[1]!, { status: m[2] as "ok" | "FAIL", ms: Number(m[3]), detail: m[4]! });
    }
    const exit = /SLIPWAY-VM exit (\d+)/.exec(console_)?.[1];
    const report = [
      `kernel ${kernel.package} (${kernel.release}); initramfs ${(initrd.cpio.length / 1048576).toFixed(0)} MiB, ${initrd.files} entries; modules ${initrd.modules.join(" ")}`,
      ...Object.entries(timings).map(([k, v]) => `  host: ${k.padEnd(26)} ${(v / 1000).toFixed(1)} s`),
      ...[...steps].map(
        ([k, v]) => `  guest: ${k.padEnd(24)} ${v.status.padEnd(4)} ${(v.ms / 1000).toFixed(2)} s  ${v.detail}`,
      ),
    ].join("\n");
    console.log(report);
    if (steps.size === 0 || exit !== "0") console.log(`guest console (tail):\n${console_.slice(-6000)}`);

    for (const name of STEPS) {
      expect({ step: name, ...(steps.get(name) ?? { status: "missing" }) }).toMatchObject({ step: name, status: "ok" });
    }
    expect([...steps.keys()].filter((k) => steps.get(k)!.status !== "ok")).toEqual([]);
    expect(exit).toBe("0");

    const create = JSON.parse(steps.get("create")!.detail) as { mount: string; dm_flags: string };
    expect(create.mount).toMatch(/ ext4 .*nosuid.*nodev|nodev.*nosuid/);
    expect(create.dm_flags).toBe("no_read_workqueue no_write_workqueue");
    const header = JSON.parse(steps.get("header")!.detail) as {
      version: number;
      cipher: string;
      keyslots: { keyBits: number; pbkdf: string; iterations: number }[];
    };
    expect(header).toMatchObject({
      version: 2,
      cipher: "aes-xts-plain64",
      keyslots: [{ keyBits: 512, pbkdf: "pbkdf2", iterations: 1000 }],
    });
    const rotate = JSON.parse(steps.get("rotate-key")!.detail) as { generation: number; keyslots: number[] };
    expect(rotate.generation).toBe(2);
    expect(rotate.keyslots).toHaveLength(1);
    const grow = JSON.parse(steps.get("grow")!.detail) as { fs_bytes_before: number; fs_bytes_after: number };
    expect(grow.fs_bytes_after).toBeGreaterThan(grow.fs_bytes_before);
    expect(performance.now() - t0).toBeLessThan(300_000);
  }, 300_000);
});
