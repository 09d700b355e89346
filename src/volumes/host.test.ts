/**
 * @module volumes/host.test
 * Against this host's real cryptsetup and kernel: the LUKS2 header's parameters, no key material
 * in any process's argv while cryptsetup runs, keyslot rotation and crypto-erase on a real header;
 * a create that fails once the header is written leaves no row and no image; and where dm-crypt is
 * missing (arranged by the test: a fake /sys and /proc tree, or a detection verdict) the appliance refuses builds with an explanation, says so in doctor and
 * /readyz, and `volumes.encryption = "none"` gives plain volumes reported as such.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { integrationSuite } from "../../test/support/integration.ts";
import { configSchema } from "../config/index.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { HealthRegistry } from "../health/registry.ts";
import { run, which } from "../host/run.ts";
import { createLogger, silentLogger } from "../log/logger.ts";
import { createSealer } from "../secrets/index.ts";
import { cryptsetup } from "./cryptsetup.ts";
import { detectDmCrypt } from "./detect.ts";
import { checkVolumes } from "./doctor.ts";
import { newVolumeKey } from "./keys.ts";
import { luksVolumeManager } from "./luks.ts";
import { createVolumeManager, VolumesUnavailableError } from "./service.ts";

const dir = mkdtempSync(join(tmpdir(), "slipway-volhost-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const volumesConfig = (over: Record<string, unknown> = {}) => configSchema.parse({ volumes: over }).volumes;

/** Runs fn while polling every process's argv; returns what was seen. */
async function watchArgv(fn: () => Promise<unknown>): Promise<string[]> {
  const seen = new Set<string>();
  let done = false;
  const poller = (async () => {
    while (!done) {
      for (const p of readdirSync("/proc")) {
        if (!/^\d+$/.test(p)) continue;
        try {
          const c = readFileSync(`/proc/${p}/cmdline`, "latin1");
          if (c.includes("cryptsetup")) seen.add(c.replaceAll("\0", " "));
        } catch {}
      }
      await Bun.sleep(0);
    }
  })();
  try {
    await fn();
  } finally {
    done = true;
    await poller;
  }
  return [...seen];
}

integrationSuite(
  "LUKS2 headers with the real cryptsetup",
  which("cryptsetup") ? null : "cryptsetup is not installed",
  () => {
    test("header: LUKS2, aes-xts-plain64, 512-bit key, PBKDF2 at 1000 iterations; keys never in argv", async () => {
      const cs = cryptsetup(run);
      const img = join(dir, "header.img");
      writeFileSync(img, new Uint8Array(0));
      await run(["truncate", "-s", "32M", img]);
      const key = newVolumeKey();
      const argv = await watchArgv(() => cs.format(img, key));
      expect(argv.some((a) => a.includes("luksFormat"))).toBe(true); // the watcher saw it run
      const dumpText = (await run(["cryptsetup", "luksDump", img])).stdout;
      expect(dumpText).toMatch(/^Version:\s+2$/m);
      expect(dumpText).toMatch(/cipher:\s+aes-xts-plain64/);
      expect(dumpText).toMatch(/Key:\s+512 bits/);
      expect(dumpText).toMatch(/PBKDF:\s+pbkdf2/);
      expect(dumpText).toMatch(/Iterations:\s+1000$/m);
      expect(await cs.dump(img)).toEqual({
        version: 2,
        cipher: "aes-xts-plain64",
        keyslots: [{ slot: 0, keyBits: 512, pbkdf: "pbkdf2", iterations: 1000 }],
      });

      // Rotation on a real header: add in a second slot (both keys on stdin), kill the first.
      const next = newVolumeKey();
      argv.push(...(await watchArgv(() => cs.addKey(img, key, next))));
      argv.push(...(await watchArgv(async () => expect(await cs.testKey(img, next)).toBe(1))));
      await cs.killSlot(img, 0);
      expect(await cs.slots(img)).toEqual([1]);
      expect(await cs.testKey(img, key)).toBeNull();
      for (const k of [key, next]) {
        const b = Buffer.from(k);
        for (const a of argv)
          for (const form of [b.toString("hex"), b.toString("base64"), b.toString("latin1").slice(0, 12)])
            expect(a).not.toContain(form);
      }
      // Crypto-erase: no key opens it any more.
      await cs.erase(img);
      expect(await cs.testKey(img, next)).toBeNull();
      expect(await cs.slots(img)).toEqual([]);
    });

    test("a create that fails after the header is written leaves no row, no image, no key", async () => {
      // The mapping step fails as it does on a kernel without device-mapper, whatever this host has;
      // everything else (the image, luksFormat, the crypto-erase on cleanup) is the real thing.
      const calls: string[] = [];
      const mappingRefused: typeof run = async (argv, opts) => {
        calls.push(argv.slice(0, 2).join(" "));
        if (argv[1] === "open" && argv.includes("--type"))
          return {
            code: 1,
            stdout: "",
            stderr: "Cannot initialize device-mapper. Is dm_mod kernel module loaded?",
            timedOut: false,
          };
        return run(argv, opts);
      };
      const db = openDatabase(join(dir, "fail.db"));
      applyMigrations(db);
      const logs: string[] = [];
      const vm = luksVolumeManager({
        db,
        sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
        run: mappingRefused,
        log: createLogger({ write: (l) => logs.push(l) }),
        root: join(dir, "fail"),
        backend: { kind: "file" },
        filesystem: "ext4",
        discards: false,
      });
      await expect(vm.ensure({ projectId: "prj_fail", platform: "linux/amd64" }, 0)).rejects.toThrow(
        /cryptsetup open failed.*device-mapper/,
      );
      expect(logs.join("\n")).toContain("creating a cache volume failed");
      // The header had been written, and was erased before the image went.
      expect(calls).toContain("cryptsetup luksFormat");
      expect(calls).toContain("cryptsetup erase");
      expect(calls.indexOf("cryptsetup erase")).toBeGreaterThan(calls.indexOf("cryptsetup open"));
      expect(db.query("SELECT COUNT(*) AS n FROM volumes").get()).toEqual({ n: 0 });
      expect(readdirSync(join(dir, "fail", "images"))).toEqual([]);
      db.close();
    });
  },
);

describe("dm-crypt detection", () => {
  const tree = (files: Record<string, string>) => {
    const root = mkdtempSync(join(dir, "tree-"));
    for (const [f, c] of Object.entries(files)) {
      Bun.spawnSync(["mkdir", "-p", join(root, f, "..")]);
      writeFileSync(join(root, f), c);
    }
    return root;
  };
  const base = { "/proc/misc": " 236 device-mapper\n", "/dev/mapper/control": "" };

  test("needs cryptsetup, device-mapper, its control node and the crypt target", () => {
    const opts = { kernelRelease: "6.1.0-test", cryptsetup: "/usr/sbin/cryptsetup" };
    expect(detectDmCrypt({ ...opts, root: tree({ ...base, "/sys/module/dm_crypt/x": "" }) })).toEqual({
      usable: true,
      reason: "device-mapper and dm-crypt are available",
    });
    expect(
      detectDmCrypt({
        ...opts,
        root: tree({
          ...base,
          "/lib/modules/6.1.0-test/modules.dep": "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\n",
        }),
      }).usable,
    ).toBe(true);
    expect(detectDmCrypt({ ...opts, root: tree(base) }).reason).toMatch(/no dm-crypt target/);
    expect(detectDmCrypt({ ...opts, root: tree({ "/proc/misc": "" }) }).reason).toMatch(/has no device-mapper/);
    expect(detectDmCrypt({ ...opts, root: tree({ "/proc/misc": " 236 device-mapper\n" }) }).reason).toMatch(
      /control node/,
    );
    expect(detectDmCrypt({ ...opts, cryptsetup: null, root: tree(base) }).reason).toMatch(
      /cryptsetup is not installed/,
    );
  });

  test("a kernel with the crypt target built in, and one whose modules cannot load it", () => {
    const opts = { kernelRelease: "6.1.0-test", cryptsetup: "/usr/sbin/cryptsetup" };
    expect(
      detectDmCrypt({
        ...opts,
        root: tree({ ...base, "/lib/modules/6.1.0-test/modules.builtin": "kernel/drivers/md/dm-crypt.ko\n" }),
      }).usable,
    ).toBe(true);
    expect(
      detectDmCrypt({ ...opts, root: tree({ ...base, "/proc/device-mapper-targets": "crypt            v1.24.0\n" }) })
        .usable,
    ).toBe(true);
    // Modules for another kernel release do not count.
    expect(
      detectDmCrypt({
        ...opts,
        root: tree({
          ...base,
          "/lib/modules/6.2.0-other/modules.dep": "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\n",
        }),
      }).usable,
    ).toBe(false);
  });
});

describe("what builds get from the configuration and the host", () => {
  const deps = async () => {
    const db = openDatabase(":memory:");
    applyMigrations(db);
    return {
      db,
      sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
      dataDir: join(dir, "data"),
      log: silentLogger,
    };
  };
  const noDm = {
    usable: false,
    reason: "the running kernel (6.18) has no device-mapper, so dm-crypt volumes cannot be opened",
  };

  test("luks without dm-crypt: builds refused with a clear error; doctor and /readyz warn", async () => {
    const v = createVolumeManager({ ...(await deps()), config: volumesConfig(), support: noDm });
    expect(v.status).toMatchObject({ encryption: "luks2", available: false });
    const err = await v.manager.ensure({ projectId: "prj_a", platform: "linux/amd64" }, 1 << 30).catch((e) => e);
    expect(err).toBeInstanceOf(VolumesUnavailableError);
    expect(err.message).toContain("has no device-mapper");
    expect(err.message).toContain('volumes.encryption = "none"');
    expect(err.message).toContain("Builds are refused");
    const health = new HealthRegistry();
    health.register(v.healthCheck);
    const report = await health.report("test");
    expect(report.status).toBe("warn");
    expect(report.checks["volumes:encryption"]![0]).toMatchObject({ status: "warn", observedValue: "unavailable" });
    expect(checkVolumes(volumesConfig(), noDm)).toMatchObject({ check: "volumes", status: "warn" });
    expect(await v.reconcile([])).toBeNull();
  });

  test("luks on a host whose detection found no dm-crypt: every build's volume is refused", async () => {
    const v = createVolumeManager({ ...(await deps()), config: volumesConfig(), support: noDm });
    expect(v.luks).toBeNull();
    for (const platform of ["linux/amd64", "linux/arm64"]) {
      await expect(v.manager.ensure({ projectId: "prj_a", platform }, 0)).rejects.toBeInstanceOf(
        VolumesUnavailableError,
      );
    }
  });

  test("encryption none, set explicitly: plain directories, reported and logged as encryption none", async () => {
    const logs: string[] = [];
    const v = createVolumeManager({
      ...(await deps()),
      log: createLogger({ write: (l) => logs.push(l) }),
      config: volumesConfig({ encryption: "none" }),
      support: noDm,
    });
    const m = await v.manager.ensure({ projectId: "prj_a", platform: "linux/amd64" }, 0);
    expect(m.encryption).toBe("none");
    expect(v.status).toMatchObject({ encryption: "none", available: true });
    expect(await v.healthCheck.run()).toMatchObject({ status: "warn", observedValue: "none" });
    expect(logs.join("\n")).toContain('"encryption":"none"');
    expect(checkVolumes(volumesConfig({ encryption: "none" }), noDm).message).toContain("NOT encrypted");
  });

  test("luks with dm-crypt: the LUKS manager; lvm needs a volume group", async () => {
    const v = createVolumeManager({
      ...(await deps()),
      config: volumesConfig(),
      support: { usable: true, reason: "ok" },
    });
    expect(v.luks).not.toBeNull();
    expect(v.manager.encryption).toBe("luks2");
    expect((await v.healthCheck.run()).status).toBe("pass");
    expect(() => configSchema.parse({ volumes: { backend: "lvm" } })).toThrow(/volume_group/);
    expect(configSchema.parse({ volumes: { backend: "lvm", volume_group: "vg0" } }).volumes.volume_group).toBe("vg0");
  });
});
