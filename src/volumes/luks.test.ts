/**
 * @module volumes/luks.test
 * The LUKS manager's ordering and bookkeeping against a stateful fake of cryptsetup, mount and
 * device-mapper (this kernel cannot open LUKS volumes; the real thing runs in test/vm): keys only
 * on stdin, a failed create leaves no row and no image, reconcile closes/reopens/recreates, and
 * interrupted rotations finish or roll back.
 */
import type { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, openDatabase } from "../db/index.ts";
import type { RunOptions, RunResult } from "../host/run.ts";
import { createLogger } from "../log/logger.ts";
import { createSealer, type Sealer } from "../secrets/index.ts";
import { unwrapVolumeKey, wrapVolumeKey } from "./keys.ts";
import { luksVolumeManager, MAPPER_PREFIX, type SystemView } from "./luks.ts";

const REF = { projectId: "prj_a", platform: "linux/amd64" };
const MiB = 1024 * 1024;

/** Enough of cryptsetup/mount/dm to follow the manager's steps, with their state. */
class FakeHost implements SystemView {
  calls: { argv: string[]; stdin: Uint8Array | null }[] = [];
  headers = new Map<string, (string | null)[]>(); // device → keyslots (hex keys)
  maps = new Map<string, string>(); // mapping name → device
  mounts = new Map<string, string>(); // mount point → source
  failOn: RegExp | null = null;

  mappings() {
    return [...this.maps.keys()];
  }
  mountinfo() {
    return [...this.mounts]
      .map(([mp, src], i) => `${30 + i} 1 253:${i} / ${mp} rw,nosuid,nodev - ext4 ${src} rw`)
      .join("\n");
  }
  run = async (argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> => {
    const stdin =
      opts.stdin === undefined
        ? null
        : typeof opts.stdin === "string"
          ? new TextEncoder().encode(opts.stdin)
          : new Uint8Array(opts.stdin);
    this.calls.push({ argv: [...argv], stdin });
    const ok = (stdout = ""): RunResult => ({ code: 0, stdout, stderr: "", timedOut: false });
    const fail = (stderr: string, code = 1): RunResult => ({ code, stdout: "", stderr, timedOut: false });
    const line = argv.join(" ");
    if (this.failOn?.test(line)) return fail("injected failure");
    const key = (i = 0) => Buffer.from(stdin!.subarray(i * 64, i * 64 + 64)).toString("hex");
    const last = argv[argv.length - 1]!;
    const [cmd, sub] = argv;
    if (cmd === "cryptsetup") {
      switch (sub) {
        case "luksFormat":
          this.headers.set(last, [key()]);
          return ok();
        case "open": {
          if (argv.includes("--test-passphrase")) {
            const slot = this.headers.get(last)?.indexOf(key()) ?? -1;
            return slot >= 0
              ? ok(`Key slot ${slot} unlocked.\nCommand successful.\n`)
              : fail("No key available with this passphrase.", 2);
          }
          const device = argv[argv.length - 2]!;
          if (!this.headers.get(device)?.includes(key())) return fail("No key available with this passphrase.", 2);
          this.maps.set(last, device);
          return ok();
        }
        case "close":
          if ([...this.mounts.values()].includes(`/dev/mapper/${last}`)) return fail("device busy", 5);
          this.maps.delete(last);
          return ok();
        case "luksAddKey": {
          const device = argv[argv.length - 2]!;
          const slots = this.headers.get(device)!;
          if (!slots.includes(key(0))) return fail("No key available with this passphrase.", 2);
          const free = slots.indexOf(null);
          if (free >= 0) slots[free] = key(1);
          else slots.push(key(1));
          return ok();
        }
        case "luksKillSlot":
          this.headers.get(argv[argv.length - 2]!)![Number(last)] = null;
          return ok();
        case "luksDump": {
          const slots = this.headers.get(last) ?? [];
          const ks = slots
            .map((k, i) =>
              k ? `  ${i}: luks2\n\tKey:        512 bits\n\tPBKDF:      pbkdf2\n\tIterations: 1000\n` : "",
            )
            .join("");
          return ok(
            `LUKS header information\nVersion:       \t2\n\nData segments:\n  0: crypt\n\tcipher: aes-xts-plain64\n\nKeyslots:\n${ks}Tokens:\n`,
          );
        }
        case "isLuks":
          return this.headers.has(last) && this.headers.get(last)!.length > 0 ? ok() : fail("not luks");
        case "erase":
          this.headers.set(last, []);
          return ok();
        case "status":
          return this.maps.has(last) ? ok(`  device:  /dev/loop7\n`) : fail("inactive", 4);
        case "resize":
          return ok();
      }
    }
    if (cmd === "mount") {
      this.mounts.set(last, argv[argv.length - 2]!);
      return ok();
    }
    if (cmd === "umount") {
      this.mounts.delete(last);
      return ok();
    }
    if (
      [
        "mkfs.ext4",
        "mkfs.xfs",
        "resize2fs",
        "xfs_growfs",
        "losetup",
        "lvcreate",
        "lvs",
        "lvremove",
        "lvextend",
      ].includes(cmd!)
    )
      return ok();
    return fail(`fake host: unexpected ${line}`, 127);
  };
  ran(re: RegExp) {
    return this.calls.filter((c) => re.test(c.argv.join(" ")));
  }
}

let dir: string;
let db: Database;
let sealer: Sealer;
let host: FakeHost;
let logs: string[];
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "slipway-luks-"));
  db = openDatabase(join(dir, "slipway.db"));
  applyMigrations(db);
  sealer = await createSealer(crypto.getRandomValues(new Uint8Array(32)));
  host = new FakeHost();
  logs = [];
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const manager = (over: Partial<Parameters<typeof luksVolumeManager>[0]> = {}) =>
  luksVolumeManager({
    db,
    sealer,
    run: host.run,
    log: createLogger({ level: "debug", write: (l) => logs.push(l) }),
    root: join(dir, "volumes"),
    backend: { kind: "file" },
    filesystem: "ext4",
    discards: false,
    system: host,
    ...over,
  });
const rows = () =>
  db.query("SELECT * FROM volumes").all() as {
    id: string;
    state: string;
    key_generation: number;
    sealed_key: Uint8Array;
    device: string;
    rotation: string | null;
  }[];
const storedKey = async (r = rows()[0]!) =>
  Buffer.from(await unwrapVolumeKey(sealer, r.sealed_key, r.id, r.key_generation)).toString("hex");

describe("create, open, close", () => {
  test("ensure formats, opens with the bypass flags, mounts nodev,nosuid; keys only on stdin", async () => {
    const vm = manager();
    const v = await vm.ensure(REF, 100 * MiB);
    expect(v).toMatchObject({
      encryption: "luks2",
      path: join(dir, "volumes", "mnt", "prj_a--linux-amd64"),
      sizeBytes: 100 * MiB,
    });
    const [r] = rows();
    expect(r).toMatchObject({ state: "ready", key_generation: 1 });
    expect(existsSync(r!.device)).toBe(true);
    const key = await storedKey();
    expect(host.headers.get(r!.device)).toEqual([key]);
    const open = host.ran(/^cryptsetup open --type/)[0]!;
    expect(open.argv).toEqual(
      expect.arrayContaining(["--key-file", "-", "--perf-no_read_workqueue", "--perf-no_write_workqueue"]),
    );
    expect(open.argv).not.toContain("--allow-discards");
    expect(host.ran(/^mount /)[0]!.argv).toEqual([
      "mount",
      "-t",
      "ext4",
      "-o",
      "nodev,nosuid",
      `/dev/mapper/${MAPPER_PREFIX}${r!.id}`,
      v.path,
    ]);
    expect(host.ran(/^mkfs.ext4/)[0]!.argv).toContain("nodiscard");
    for (const c of host.calls) expect(c.argv.join(" ")).not.toContain(key);
    expect(logs.join("\n")).not.toContain(key);
    // Idempotent: a second ensure neither formats nor reopens.
    await vm.ensure(REF, 100 * MiB);
    expect(host.ran(/luksFormat/)).toHaveLength(1);
    expect(host.ran(/^cryptsetup open --type/)).toHaveLength(1);
    await vm.close(REF);
    expect(host.maps.size + host.mounts.size).toBe(0);
    await vm.ensure(REF, 100 * MiB);
    expect(host.ran(/^cryptsetup open --type/)).toHaveLength(2);
  });

  test("discards on: --allow-discards, mount discard, mkfs discards", async () => {
    await manager({ discards: true }).ensure(REF, 0);
    expect(host.ran(/^cryptsetup open --type/)[0]!.argv).toContain("--allow-discards");
    expect(host.ran(/^mount /)[0]!.argv).toContain("nodev,nosuid,discard");
    expect(rows()[0]!.device).toEndWith(".img");
  });

  test("xfs is made without reflink; LVM volumes come from the volume group", async () => {
    const vm = manager({ filesystem: "xfs", backend: { kind: "lvm", volumeGroup: "vg0" } });
    const v = await vm.ensure(REF, 0);
    const r = rows()[0]!;
    expect(r.device).toBe(`/dev/vg0/slipway-${r.id.replace("_", "-")}`);
    expect(host.ran(/^lvcreate/)[0]!.argv).toEqual(expect.arrayContaining(["--size", `${64 * MiB}b`, "vg0"]));
    expect(host.ran(/^mkfs.xfs/)[0]!.argv).toEqual(expect.arrayContaining(["-m", "reflink=0", "-K"]));
    expect(host.ran(/^mount /)[0]!.argv.slice(0, 3)).toEqual(["mount", "-t", "xfs"]);
    await vm.grow(REF, 128 * MiB);
    expect(host.ran(/^lvextend/)[0]!.argv).toEqual(["lvextend", "--size", `${128 * MiB}b`, r.device.slice(5)]);
    expect(host.ran(/^xfs_growfs/)[0]!.argv).toEqual(["xfs_growfs", v.path]);
    await vm.delete(REF);
    expect(host.ran(/^lvremove/)[0]!.argv).toEqual(["lvremove", "--yes", r.device.slice(5)]);
  });
});

describe("a failure halfway leaves no half-made volume", () => {
  for (const step of ["luksFormat", "cryptsetup open --type", "mkfs.ext4"]) {
    test(`failing at ${step}: no row, no image, header erased`, async () => {
      host.failOn = new RegExp(step);
      await expect(manager().ensure(REF, 0)).rejects.toThrow(/injected failure/);
      expect(rows()).toEqual([]);
      expect(readdirSync(join(dir, "volumes", "images"))).toEqual([]);
      expect(host.maps.size).toBe(0);
      if (step !== "luksFormat") expect(host.ran(/^cryptsetup erase/)).toHaveLength(1);
    });
  }

  test("a sealer failure writes nothing at all", async () => {
    const broken: Sealer = { ...sealer, seal: async () => Promise.reject(new Error("sealer down")) };
    await expect(manager({ sealer: broken }).ensure(REF, 0)).rejects.toThrow("sealer down");
    expect(rows()).toEqual([]);
    expect(host.calls).toEqual([]);
  });

  test("one volume per (project, platform): the unique constraint holds", async () => {
    await manager().ensure(REF, 0);
    const r = rows()[0]!;
    expect(() =>
      db
        .query(
          "INSERT INTO volumes (id, project_id, platform, backend, device, filesystem, size_bytes, state, key_generation, sealed_key, created_at, updated_at) VALUES ('vol_x', ?, ?, 'file', 'x', 'ext4', 1, 'ready', 1, x'00', '', '')",
        )
        .run(REF.projectId, REF.platform),
    ).toThrow(/UNIQUE/);
    expect(rows().map((x) => x.id)).toEqual([r.id]);
  });
});

describe("reset, delete, grow, rotate", () => {
  test("reset crypto-erases, removes the image, recreates with a new id and key", async () => {
    const vm = manager();
    await vm.ensure(REF, 80 * MiB);
    const before = rows()[0]!;
    const oldKey = await storedKey(before);
    await vm.reset(REF);
    const after = rows()[0]!;
    expect(after.id).not.toBe(before.id);
    expect(await storedKey(after)).not.toBe(oldKey);
    expect(existsSync(before.device)).toBe(false);
    expect(host.ran(/^cryptsetup erase/)[0]!.argv).toContain(before.device);
    expect(host.maps.size + host.mounts.size).toBe(0); // fresh volume left closed
    expect((await vm.ensure(REF, 0)).sizeBytes).toBe(80 * MiB);
    await vm.delete(REF);
    expect(rows()).toEqual([]);
    expect(readdirSync(join(dir, "volumes", "images"))).toEqual([]);
  });

  test("grow: image, loop capacity, dm-crypt (key on stdin), ext4; never shrinks", async () => {
    const vm = manager();
    await vm.ensure(REF, 64 * MiB);
    const v = await vm.grow(REF, 128 * MiB);
    expect(v.sizeBytes).toBe(128 * MiB);
    expect(Bun.file(rows()[0]!.device).size).toBe(128 * MiB);
    expect(host.ran(/^losetup --set-capacity \/dev\/loop7$/)).toHaveLength(1);
    expect(host.ran(/^cryptsetup resize/)[0]!.stdin).toHaveLength(64);
    expect(host.ran(/^resize2fs/)).toHaveLength(1);
    expect((await vm.grow(REF, 64 * MiB)).sizeBytes).toBe(128 * MiB);
  });

  test("rotateKey: new key in a second slot, promoted, old slot killed", async () => {
    const vm = manager();
    await vm.ensure(REF, 0);
    const oldKey = await storedKey();
    expect(await vm.rotateKey(REF)).toEqual({ generation: 2 });
    const r = rows()[0]!;
    const newKey = await storedKey(r);
    expect(r).toMatchObject({ key_generation: 2, rotation: null });
    expect(host.headers.get(r.device)).toEqual([null, newKey]);
    const add = host.ran(/luksAddKey/)[0]!;
    expect(Buffer.from(add.stdin!).toString("hex")).toBe(oldKey + newKey);
    for (const c of host.calls) expect(c.argv.join(" ")).not.toMatch(new RegExp(`${oldKey}|${newKey}`));
    // A key wrapped for generation 1 does not open as generation 2.
    await expect(unwrapVolumeKey(sealer, r.sealed_key, r.id, 1)).rejects.toThrow();
  });
});

describe("reconcile after a crash", () => {
  test("closes what nothing needs and what no row knows, reopens what builders need", async () => {
    const vm = manager();
    const b = { projectId: "prj_b", platform: "linux/arm64" };
    await vm.ensure(REF, 0);
    await vm.ensure(b, 0);
    await vm.close(b);
    // A mapping and mount left by a volume whose row is gone.
    host.maps.set(`${MAPPER_PREFIX}vol_ghost`, "/x");
    host.mounts.set("/somewhere/else", `/dev/mapper/${MAPPER_PREFIX}vol_ghost`);
    const [ra, rb] = rows() as [ReturnType<typeof rows>[0], ReturnType<typeof rows>[0]];
    const report = await manager().reconcile([b]);
    expect(report.closed.sort()).toEqual([ra.id, "vol_ghost"].sort());
    expect(report.reopened).toEqual([rb.id]);
    expect([...host.maps.keys()]).toEqual([`${MAPPER_PREFIX}${rb.id}`]);
    expect([...host.mounts.keys()]).toEqual([join(dir, "volumes", "mnt", "prj_b--linux-arm64")]);
  });

  test("a half-created volume is erased for recreation; an interrupted erase is finished; orphans go", async () => {
    const vm = manager();
    const b = { projectId: "prj_b", platform: "linux/amd64" };
    await vm.ensure(REF, 0);
    await vm.ensure(b, 0);
    const [r, rb] = rows() as [ReturnType<typeof rows>[0], ReturnType<typeof rows>[0]];
    db.query("UPDATE volumes SET state = 'creating' WHERE id = ?").run(r.id);
    db.query("UPDATE volumes SET state = 'erasing' WHERE id = ?").run(rb.id);
    mkdirSync(join(dir, "volumes", "images"), { recursive: true });
    const orphan = join(dir, "volumes", "images", "vol_orphan.img");
    writeFileSync(orphan, "x");
    host.headers.set(orphan, ["ab"]);
    const report = await manager().reconcile([]);
    expect(report).toMatchObject({ recreated: [r.id], erased: [rb.id], orphans: ["vol_orphan.img"] });
    expect(rows()).toEqual([]);
    expect(host.maps.size + host.mounts.size).toBe(0);
    expect(readdirSync(join(dir, "volumes", "images"))).toEqual([]);
    expect(
      host
        .ran(/^cryptsetup erase/)
        .map((c) => c.argv.at(-1))
        .sort(),
    ).toEqual([r.device, rb.device, orphan].sort());
    const v = await manager().ensure(REF, 0);
    expect(v.id).not.toBe(r.id);
  });

  test("rotation interrupted before the new keyslot: rolled back; after it: completed", async () => {
    const vm = manager();
    await vm.ensure(REF, 0);
    let r = rows()[0]!;
    const oldKey = await storedKey(r);
    // Crash 1: pending key stored, never added to the header.
    const pending = crypto.getRandomValues(new Uint8Array(64));
    const setPending = async () =>
      db
        .query(
          "UPDATE volumes SET rotation = 'adding', pending_key_generation = 2, pending_sealed_key = ? WHERE id = ?",
        )
        .run(await wrapVolumeKey(sealer, pending, r.id, 2), r.id);
    await setPending();
    expect((await manager().reconcile([])).rotations).toEqual([r.id]);
    r = rows()[0]!;
    expect(r).toMatchObject({ rotation: null, key_generation: 1 });
    expect(await storedKey(r)).toBe(oldKey);
    // Crash 2: the new key made it into slot 1, the database was not updated yet.
    await setPending();
    host.headers.get(r.device)!.push(Buffer.from(pending).toString("hex"));
    await manager().reconcile([]);
    r = rows()[0]!;
    expect(r).toMatchObject({ rotation: null, key_generation: 2 });
    expect(await storedKey(r)).toBe(Buffer.from(pending).toString("hex"));
    expect(host.headers.get(r.device)).toEqual([null, Buffer.from(pending).toString("hex")]);
  });
});
