/**
 * @module volumes/selftest
 * The LUKS volume manager's life cycle, run for real against cryptsetup, dm-crypt, ext4 and the
 * kernel: what the VM test (test/vm) boots a Debian kernel to run, inside the guest, through the
 * compiled binary's hidden `__volume-selftest` command. It lives in the binary rather than in a
 * test-only bundle so the guest exercises exactly the code (and embedded migrations) that ships.
 * It works only inside the directory it is given and touches only volumes it creates there.
 *
 * Each step prints one line: `SLIPWAY-VM <step> ok <ms> <json detail>` or
 * `SLIPWAY-VM <step> FAIL <ms> <message>`; the host asserts on every line.
 */
import type { Database } from "bun:sqlite";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { run as hostRun } from "../host/run.ts";
import { createLogger } from "../log/logger.ts";
import { createSealer } from "../secrets/index.ts";
import { cryptsetup } from "./cryptsetup.ts";
import { unwrapVolumeKey } from "./keys.ts";
import { luksVolumeManager, MAPPER_PREFIX } from "./luks.ts";
import type { VolumeRef } from "./types.ts";

const MiB = 1024 * 1024;
const REF: VolumeRef = { projectId: "prj_selftest", platform: "linux/amd64" };
const CRASH_REF: VolumeRef = { projectId: "prj_crash", platform: "linux/arm64" };

export interface SelftestIo {
  out(line: string): void;
}

function masterKey(dir: string): Uint8Array {
  const f = join(dir, "master.key");
  if (!existsSync(f)) writeFileSync(f, crypto.getRandomValues(new Uint8Array(32)), { mode: 0o600 });
  return new Uint8Array(readFileSync(f));
}

async function open(dir: string, logLines: string[]) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  const sealer = await createSealer(masterKey(dir));
  const log = createLogger({ level: "debug", write: (l) => logLines.push(l) });
  const vm = luksVolumeManager({
    db,
    sealer,
    run: hostRun,
    log,
    root: join(dir, "volumes"),
    backend: { kind: "file" },
    filesystem: "ext4",
    discards: false,
  });
  return { db, sealer, vm };
}

/** Every process's argv seen while `fn` runs (polled from /proc). */
async function watchArgv<T>(fn: () => Promise<T>): Promise<{ result: T; argv: Set<string> }> {
  const argv = new Set<string>();
  let done = false;
  const poll = async () => {
    while (!done) {
      for (const p of readdirSync("/proc")) {
        if (!/^\d+$/.test(p)) continue;
        try {
          const c = readFileSync(`/proc/${p}/cmdline`, "latin1");
          if (c) argv.add(c.replaceAll("\0", " ").trim());
        } catch {}
      }
      await Bun.sleep(1);
    }
  };
  const poller = poll();
  try {
    return { result: await fn(), argv };
  } finally {
    done = true;
    await poller;
  }
}

function keyForms(key: Uint8Array): string[] {
  const b = Buffer.from(key);
  return [b.toString("hex"), b.toString("base64"), b.toString("latin1").slice(0, 16), b.toString("hex").toUpperCase()];
}

function storedKey(db: Database, sealer: Awaited<ReturnType<typeof createSealer>>, ref: VolumeRef) {
  const r = db
    .query("SELECT id, sealed_key, key_generation, device FROM volumes WHERE project_id = ? AND platform = ?")
    .get(ref.projectId, ref.platform) as {
    id: string;
    sealed_key: Uint8Array;
    key_generation: number;
    device: string;
  };
  return unwrapVolumeKey(sealer, r.sealed_key, r.id, r.key_generation).then((key) => ({ ...r, key }));
}

function writeMarker(path: string, text: string): void {
  const fd = openSync(path, "w");
  try {
    // Big enough to leave its own data blocks (never inlined in an inode).
    writeSync(fd, text.repeat(Math.ceil(65536 / text.length)));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The crash child: creates a volume and stops where it is killed (mid-create or while mounted). */
export async function selftestCrashChild(dir: string, io: SelftestIo): Promise<number> {
  const { vm } = await open(dir, []);
  const v = await vm.ensure(CRASH_REF, 64 * MiB);
  writeMarker(join(v.path, "survivor"), "SURVIVES-A-KILLED-SERVE");
  io.out("CHILD-READY");
  await Bun.sleep(600_000);
  return 0;
}

// Long (about 240 lines): one linear script of steps the VM test reads line by line from the
// serial console; each step is a short call, and their order is the test.
export async function volumeSelftest(
  dir: string,
  io: SelftestIo,
  self: string[] = [process.execPath],
): Promise<number> {
  let failures = 0;
  const logLines: string[] = [];
  const started = performance.now();
  // A step resolves with details to print, or with nothing.
  const step = async (name: string, fn: () => Promise<unknown>) => {
    const t = performance.now();
    try {
      const detail = ((await fn()) as Record<string, unknown> | undefined) ?? {};
      io.out(`SLIPWAY-VM ${name} ok ${Math.round(performance.now() - t)} ${JSON.stringify(detail)}`);
    } catch (e) {
      failures++;
      io.out(
        `SLIPWAY-VM ${name} FAIL ${Math.round(performance.now() - t)} ${(e as Error).message.replace(/\n/g, " ")}`,
      );
    }
  };
  const assert = (cond: unknown, msg: string) => {
    if (!cond) throw new Error(msg);
  };

  const { db, sealer, vm } = await open(dir, logLines);
  const cs = cryptsetup(hostRun);
  const marker = `SLIPWAY-MARKER-${crypto.randomUUID()}`;
  const seenKeys: Uint8Array[] = [];
  const argvSeen = new Set<string>();
  let mountPath = "";
  const mapperOf = (id: string) => `/dev/mapper/${MAPPER_PREFIX}${id}`;

  await step("create", async () => {
    const { result, argv } = await watchArgv(() => vm.ensure(REF, 64 * MiB));
    for (const a of argv) argvSeen.add(a);
    mountPath = result.path;
    const k = await storedKey(db, sealer, REF);
    seenKeys.push(k.key);
    assert(result.encryption === "luks2", `encryption ${result.encryption}`);
    const mounts = readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .find((l) => l.split(" ")[1] === result.path);
    assert(mounts, "volume is not mounted");
    const opts = mounts!.split(" ")[3]!.split(",");
    assert(opts.includes("nodev") && opts.includes("nosuid"), `mount options ${opts.join(",")}`);
    const table = (await hostRun(["dmsetup", "table", `${MAPPER_PREFIX}${k.id}`])).stdout;
    return {
      volume: k.id,
      mount: mounts!.split(" ").slice(0, 4).join(" "),
      dm_flags:
        /no_read_workqueue/.test(table) && /no_write_workqueue/.test(table)
          ? "no_read_workqueue no_write_workqueue"
          : table.trim().split(" ").slice(8).join(" ") || "(dmsetup unavailable)",
    };
  });

  await step("header", async () => {
    const k = await storedKey(db, sealer, REF);
    const d = await cs.dump(k.device);
    assert(d.version === 2 && d.cipher === "aes-xts-plain64", `header ${JSON.stringify(d)}`);
    assert(
      d.keyslots.length === 1 &&
        d.keyslots[0]!.keyBits === 512 &&
        d.keyslots[0]!.pbkdf === "pbkdf2" &&
        d.keyslots[0]!.iterations === 1000,
      `keyslots ${JSON.stringify(d.keyslots)}`,
    );
    return { version: d.version, cipher: d.cipher, keyslots: d.keyslots };
  });

  await step("write-marker", async () => {
    writeMarker(join(mountPath, "marker"), marker);
    const k = await storedKey(db, sealer, REF);
    // Positive control: through the open mapping the plaintext is there to be found.
    const plain = readFileSync(mapperOf(k.id));
    assert(plain.indexOf(marker) >= 0, "marker not visible through the open dm-crypt mapping (control failed)");
  });

  await step("close", async () => {
    const k = await storedKey(db, sealer, REF);
    await vm.close(REF);
    assert(!existsSync(mapperOf(k.id)), "mapping still present after close");
  });

  await step("raw-image-lacks-marker", async () => {
    const k = await storedKey(db, sealer, REF);
    const raw = readFileSync(k.device);
    assert(raw.indexOf(marker) < 0, "the raw image contains the marker in plain text");
    assert(
      raw.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])),
      "no LUKS magic at the start of the image",
    );
    return { image_bytes: raw.length };
  });

  await step("reopen-with-stored-key", async () => {
    const { result, argv } = await watchArgv(() => vm.ensure(REF, 64 * MiB));
    for (const a of argv) argvSeen.add(a);
    const text = readFileSync(join(result.path, "marker"), "utf8");
    assert(text.startsWith(marker), "marker missing after reopening");
  });

  await step("wrong-key-fails", async () => {
    const k = await storedKey(db, sealer, REF);
    const wrong = crypto.getRandomValues(new Uint8Array(64));
    assert((await cs.testKey(k.device, wrong)) === null, "a random key opened the volume");
    const r = await hostRun(
      ["cryptsetup", "open", "--key-file", "-", "--keyfile-size", "64", k.device, "slipway-selftest-wrong"],
      { stdin: wrong },
    );
    assert(r.code !== 0 && !existsSync("/dev/mapper/slipway-selftest-wrong"), "open with a wrong key succeeded");
    assert((await cs.testKey(k.device, k.key)) !== null, "the stored key does not open the volume");
    return { wrong_key_exit: r.code };
  });

  await step("rotate-key", async () => {
    const before = await storedKey(db, sealer, REF);
    const { generation } = await vm.rotateKey(REF);
    const after = await storedKey(db, sealer, REF);
    seenKeys.push(after.key);
    assert(
      generation === before.key_generation + 1 && after.key_generation === generation,
      `generation ${after.key_generation}`,
    );
    assert(!Buffer.from(after.key).equals(Buffer.from(before.key)), "key unchanged");
    assert((await cs.testKey(after.device, before.key)) === null, "the old key still opens the volume");
    const slots = await cs.slots(after.device);
    assert(slots.length === 1, `keyslots after rotation: ${slots.join(",")}`);
    await vm.close(REF);
    const v = await vm.ensure(REF, 64 * MiB);
    assert(readFileSync(join(v.path, "marker"), "utf8").startsWith(marker), "marker missing after rotation");
    return { generation, keyslots: slots };
  });

  await step("reset", async () => {
    const before = await storedKey(db, sealer, REF);
    await vm.reset(REF);
    const after = await storedKey(db, sealer, REF);
    seenKeys.push(after.key);
    assert(after.id !== before.id, "reset kept the volume id");
    assert(!existsSync(before.device), "the old image survived the reset");
    const images = readdirSync(join(dir, "volumes", "images")).map((f) => join(dir, "volumes", "images", f));
    for (const img of images) assert((await cs.testKey(img, before.key)) === null, `the old key opens ${img}`);
    const v = await vm.ensure(REF, 64 * MiB);
    assert(!existsSync(join(v.path, "marker")), "the marker survived the reset");
    return { old_volume: before.id, new_volume: after.id, images_checked: images.length };
  });

  await step("grow", async () => {
    const v = await vm.ensure(REF, 64 * MiB);
    writeMarker(join(v.path, "marker2"), `${marker}-2`);
    const before = statfsSync(v.path);
    const grown = await vm.grow(REF, 128 * MiB);
    const after = statfsSync(grown.path);
    const sizeBefore = before.blocks * before.bsize;
    const sizeAfter = after.blocks * after.bsize;
    assert(sizeAfter > sizeBefore + 32 * MiB, `filesystem ${sizeBefore} → ${sizeAfter} bytes`);
    assert(readFileSync(join(grown.path, "marker2"), "utf8").startsWith(`${marker}-2`), "data lost while growing");
    assert(grown.sizeBytes === 128 * MiB, `recorded size ${grown.sizeBytes}`);
    const u = await vm.usage(REF);
    return { fs_bytes_before: sizeBefore, fs_bytes_after: sizeAfter, used_bytes: u?.usedBytes };
  });

  await step("crash-recovery", async () => {
    // A process holding a volume open and mounted is SIGKILLed (as a crashed `serve` would be):
    // the next start's reconcile closes what nothing needs, and the data opens with the stored key.
    const child = Bun.spawn([...self, "__volume-selftest", "--dir", dir, "--crash-child"], {
      stdout: "pipe",
      stderr: "inherit",
    });
    let out = "";
    const reader = child.stdout.getReader();
    const deadline = Date.now() + 120_000;
    while (!out.includes("CHILD-READY") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    assert(out.includes("CHILD-READY"), `crash child did not get ready: ${out}`);
    child.kill("SIGKILL");
    await child.exited;
    const k = await storedKey(db, sealer, CRASH_REF);
    assert(existsSync(mapperOf(k.id)), "the killed process's mapping is gone already (nothing to reconcile)");
    const fresh = await open(dir, logLines);
    const report = await fresh.vm.reconcile([REF]);
    assert(report.closed.includes(k.id), `reconcile did not close the orphaned mapping: ${JSON.stringify(report)}`);
    assert(!existsSync(mapperOf(k.id)), "mapping still open after reconcile");
    const v = await fresh.vm.ensure(CRASH_REF, 64 * MiB);
    assert(
      readFileSync(join(v.path, "survivor"), "utf8").startsWith("SURVIVES-A-KILLED-SERVE"),
      "data lost after the crash",
    );
    // And a crash in the middle of create: a `creating` row is erased and recreated cleanly.
    await fresh.vm.delete(CRASH_REF);
    const half = await killDuringCreate(self, dir);
    const report2 = await fresh.vm.reconcile([REF]);
    assert(
      report2.recreated.length === 1,
      `a half-created volume was not erased for recreation: ${JSON.stringify(report2)}`,
    );
    const again = await fresh.vm.ensure(CRASH_REF, 64 * MiB);
    assert(
      readdirSync(again.path).every((n) => n === "lost+found"),
      "recreated volume is not empty",
    );
    return { closed: report.closed, killed_during: half.during, reconcile_after_half_create: report2 };
  });

  await step("no-key-material", async () => {
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    const dbBytes = readFileSync(join(dir, "slipway.db"));
    const logs = logLines.join("\n");
    const cryptsetupArgv = [...argvSeen].filter((a) => /cryptsetup (luksFormat|open)/.test(a));
    assert(cryptsetupArgv.length > 0, "the argv watcher never saw cryptsetup run (watcher broken?)");
    for (const key of seenKeys) {
      for (const form of keyForms(key)) {
        for (const a of argvSeen) assert(!a.includes(form), "key material in a process's argv");
        assert(!logs.includes(form), "key material in the logs");
      }
      assert(
        dbBytes.indexOf(Buffer.from(key)) < 0 && dbBytes.indexOf(Buffer.from(Buffer.from(key).toString("hex"))) < 0,
        "a plain key in the database file",
      );
    }
    return {
      argv_seen: argvSeen.size,
      cryptsetup_argv: cryptsetupArgv.slice(0, 3),
      keys_checked: seenKeys.length,
      log_lines: logLines.length,
    };
  });

  io.out(
    `SLIPWAY-VM total ${failures === 0 ? "ok" : "FAIL"} ${Math.round(performance.now() - started)} {"failures":${failures}}`,
  );
  return failures === 0 ? 0 : 1;
}

/** Starts a crash child and SIGKILLs it while mkfs runs: after format, before the row is ready. */
async function killDuringCreate(self: string[], dir: string): Promise<{ during: string }> {
  const child = Bun.spawn([...self, "__volume-selftest", "--dir", dir, "--crash-child"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const deadline = Date.now() + 120_000;
  let during = "";
  while (!during && Date.now() < deadline && child.exitCode === null) {
    for (const p of readdirSync("/proc")) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const c = readFileSync(`/proc/${p}/cmdline`, "latin1").replaceAll("\0", " ");
        if (/^(\S*\/)?mkfs\.ext4 /.test(c)) {
          during = c.split(" ").slice(0, 2).join(" ");
          break;
        }
      } catch {}
    }
    if (!during) await Bun.sleep(1);
  }
  child.kill("SIGKILL");
  await child.exited;
  // Let the orphaned mkfs finish before anyone touches the device.
  for (let i = 0; i < 600; i++) {
    const busy = readdirSync("/proc").some((p) => {
      try {
        return /^\d+$/.test(p) && readlinkSync(`/proc/${p}/exe`).endsWith("mke2fs");
      } catch {
        return false;
      }
    });
    if (!busy) break;
    await Bun.sleep(100);
  }
  if (!during) throw new Error("never saw mkfs run in the crash child");
  return { during };
}
