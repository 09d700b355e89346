/**
 * @module volumes/luks
 * LUKS2 cache volumes, one per (project, platform): a sparse image file under the volumes dir
 * (default) or a logical volume in a configured LVM volume group, formatted LUKS2 with a 64-byte
 * random key, opened through dm-crypt, ext4 (or xfs without reflink) mounted nodev,nosuid.
 *
 * Crash safety comes from ordering every step against the database:
 * - create: the row (state `creating`) and the wrapped key are committed in one transaction
 *   before anything touches the disk; `ready` is set only after mkfs. A crash leaves either a
 *   `ready` volume whose header opens with its stored key, or a `creating` one that is erased and
 *   recreated.
 * - reset/delete: close, mark `erasing`, `cryptsetup erase` (every keyslot wiped: the data is
 *   gone whatever key survives elsewhere), remove the backing, delete the row. A crash is
 *   finished on the next start.
 * - key rotation: the new wrapped key is stored as pending first, added in a second keyslot,
 *   then promoted; only then is the old keyslot killed. At every point one stored key opens it.
 */
import type { Database } from "bun:sqlite";
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statfsSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import { NotFoundError, PreconditionError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Logger } from "../log/logger.ts";
import type { Sealer } from "../secrets/index.ts";
import { cryptsetup, must, type Runner } from "./cryptsetup.ts";
import { newVolumeKey, unwrapVolumeKey, wrapVolumeKey } from "./keys.ts";
import { volumeName } from "./plain.ts";
import type { MountedVolume, VolumeManager, VolumeRef, VolumeUsage } from "./types.ts";

export const MAPPER_PREFIX = "slipway-";
/** LUKS2's header takes 16 MiB; below this a filesystem has no room worth having. */
export const MIN_VOLUME_BYTES = 64 * 1024 * 1024;

export type VolumeBackend = { kind: "file" } | { kind: "lvm"; volumeGroup: string };
export type Filesystem = "ext4" | "xfs";

/** What the manager reads about the running system; real by default, replaced in unit tests. */
export interface SystemView {
  /** Names of active device-mapper devices. */
  mappings(): string[];
  /** Contents of /proc/self/mountinfo. */
  mountinfo(): string;
}

export const realSystem: SystemView = {
  mappings() {
    const out: string[] = [];
    let entries: string[] = [];
    try {
      entries = readdirSync("/sys/block").filter((n) => n.startsWith("dm-"));
    } catch {
      return out;
    }
    for (const e of entries) {
      try {
        out.push(readFileSync(`/sys/block/${e}/dm/name`, "utf8").trim());
      } catch {}
    }
    return out;
  },
  mountinfo: () => readFileSync("/proc/self/mountinfo", "utf8"),
};

export interface LuksVolumeDeps {
  db: Database;
  sealer: Sealer;
  run: Runner;
  log: Logger;
  /** Volumes dir: images/ (image files) and mnt/ (mount points) live under it. */
  root: string;
  backend: VolumeBackend;
  filesystem: Filesystem;
  /** Pass discards (TRIM) through dm-crypt and mount with `discard`. */
  discards: boolean;
  system?: SystemView;
}

interface Row {
  id: string;
  project_id: string;
  platform: string;
  backend: "file" | "lvm";
  device: string;
  filesystem: Filesystem;
  size_bytes: number;
  state: "creating" | "ready" | "erasing";
  key_generation: number;
  sealed_key: Uint8Array;
  rotation: "adding" | "killing" | null;
  pending_key_generation: number | null;
  pending_sealed_key: Uint8Array | null;
}

export interface ReconcileReport {
  /** Volumes a crash left half-created: erased; the next ensure() recreates them. */
  recreated: string[];
  /** Erasures a crash interrupted, finished. */
  erased: string[];
  /** Key rotations a crash interrupted, finished or rolled back. */
  rotations: string[];
  /** Mappings nothing needs (or no row knows), closed. */
  closed: string[];
  /** Volumes running builders need, opened and mounted. */
  reopened: string[];
  /** Backing image files with no row (their key is gone), removed. */
  orphans: string[];
}

export interface LuksVolumeManager extends VolumeManager {
  /** Per-volume key rotation (crash-safe; see the module comment). */
  rotateKey(ref: VolumeRef): Promise<{ generation: number }>;
  /** Start-up: bring device-mapper and mounts in line with the database. */
  reconcile(needed: VolumeRef[]): Promise<ReconcileReport>;
}

/** Unescapes mountinfo's octal escapes (\040 for space, ...). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): { mountPoint: string; source: string; fstype: string }[] {
  const out: { mountPoint: string; source: string; fstype: string }[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const f = pre.split(" ");
    const g = post.split(" ");
    out.push({ mountPoint: unescapeMount(f[4] ?? ""), source: unescapeMount(g[1] ?? ""), fstype: g[0] ?? "" });
  }
  return out;
}

export function luksVolumeManager(deps: LuksVolumeDeps): LuksVolumeManager {
  const { db, sealer, run, log } = deps;
  const cs = cryptsetup(run);
  const sys = deps.system ?? realSystem;
  const images = join(deps.root, "images");
  const mnt = join(deps.root, "mnt");

  const mapperName = (id: string) => `${MAPPER_PREFIX}${id}`;
  const mapperDev = (id: string) => `/dev/mapper/${mapperName(id)}`;
  const mountPoint = (ref: { projectId: string; platform: string }) => join(mnt, volumeName(ref));
  const refOf = (r: Row): VolumeRef => ({ projectId: r.project_id, platform: r.platform });
  const isOpen = (id: string) => sys.mappings().includes(mapperName(id));
  const isMounted = (path: string) => parseMountinfo(sys.mountinfo()).some((m) => m.mountPoint === path);
  const now = () => new Date().toISOString();

  const get = (ref: VolumeRef): Row | null => {
    volumeName(ref); // validates
    return (
      (db
        .query("SELECT * FROM volumes WHERE project_id = ? AND platform = ?")
        .get(ref.projectId, ref.platform) as Row | null) ?? null
    );
  };
  const reload = (id: string): Row => db.query("SELECT * FROM volumes WHERE id = ?").get(id) as Row;
  const mounted = (r: Row): MountedVolume => ({
    id: r.id,
    path: mountPoint(refOf(r)),
    encryption: "luks2",
    sizeBytes: r.size_bytes,
  });
  const keyOf = (r: Row) => unwrapVolumeKey(sealer, r.sealed_key, r.id, r.key_generation);

  // One operation at a time per (project, platform): builders may ask concurrently.
  const locks = new Map<string, Promise<unknown>>();
  function locked<T>(ref: VolumeRef, fn: () => Promise<T>): Promise<T> {
    const k = volumeName(ref);
    const prev = locks.get(k) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    locks.set(k, next);
    void next.finally(() => locks.get(k) === next && locks.delete(k)).catch(() => {});
    return next;
  }

  // --- backing storage -------------------------------------------------------------------
  const lvName = (id: string) => `slipway-${id.replace(/_/g, "-")}`;
  function devicePathFor(id: string): string {
    return deps.backend.kind === "file" ? join(images, `${id}.img`) : `/dev/${deps.backend.volumeGroup}/${lvName(id)}`;
  }
  async function allocate(r: Row): Promise<void> {
    if (r.backend === "file") {
      mkdirSync(images, { recursive: true, mode: 0o700 });
      const fd = openSync(r.device, "wx", 0o600); // sparse: only written blocks take space
      try {
        ftruncateSync(fd, r.size_bytes);
      } finally {
        closeSync(fd);
      }
    } else {
      const vg = (deps.backend as { volumeGroup: string }).volumeGroup;
      await must(run, [
        "lvcreate",
        "--yes",
        "--wipesignatures",
        "y",
        "--name",
        lvName(r.id),
        "--size",
        `${r.size_bytes}b`,
        vg,
      ]);
    }
  }
  async function backingExists(r: Row): Promise<boolean> {
    if (r.backend === "file") return existsSync(r.device);
    return (await run(["lvs", "--noheadings", "-o", "lv_name", r.device.replace(/^\/dev\//, "")])).code === 0;
  }
  async function removeBacking(r: Row): Promise<void> {
    if (r.backend === "file") {
      if (existsSync(r.device)) unlinkSync(r.device);
    } else if (await backingExists(r)) {
      await must(run, ["lvremove", "--yes", r.device.replace(/^\/dev\//, "")]);
    }
  }

  // --- open / mount / close --------------------------------------------------------------
  async function openAndMount(r: Row): Promise<MountedVolume> {
    if (!isOpen(r.id)) {
      const key = await keyOf(r);
      try {
        await cs.open(r.device, mapperName(r.id), key, { discards: deps.discards });
      } finally {
        key.fill(0);
      }
    }
    const path = mountPoint(refOf(r));
    if (!isMounted(path)) {
      mkdirSync(path, { recursive: true, mode: 0o700 });
      const opts = ["nodev", "nosuid", ...(deps.discards ? ["discard"] : [])].join(",");
      await must(run, ["mount", "-t", r.filesystem, "-o", opts, mapperDev(r.id), path]);
    }
    return mounted(r);
  }

  async function closeRow(r: Pick<Row, "id" | "project_id" | "platform">): Promise<boolean> {
    let did = false;
    const path = r.project_id ? mountPoint(refOf(r as Row)) : null;
    for (const m of parseMountinfo(sys.mountinfo())) {
      if (m.mountPoint === path || m.source === mapperDev(r.id)) {
        await must(run, ["umount", m.mountPoint]);
        did = true;
      }
    }
    if (isOpen(r.id)) {
      await cs.close(mapperName(r.id));
      did = true;
    }
    return did;
  }

  async function mkfs(r: Row): Promise<void> {
    const dev = mapperDev(r.id);
    if (r.filesystem === "ext4") {
      await must(run, [
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        "slipway-cache",
        "-E",
        deps.discards ? "discard" : "nodiscard",
        dev,
      ]);
    } else {
      await must(run, [
        "mkfs.xfs",
        "-q",
        "-f",
        "-L",
        "slipway-cache",
        "-m",
        "reflink=0",
        ...(deps.discards ? [] : ["-K"]),
        dev,
      ]);
    }
  }

  // --- create / destroy --------------------------------------------------------------------
  async function create(ref: VolumeRef, sizeBytes: number): Promise<Row> {
    const id = newId("vol");
    const key = newVolumeKey();
    const size = Math.max(MIN_VOLUME_BYTES, Math.ceil(sizeBytes / 4096) * 4096);
    try {
      const sealed = await wrapVolumeKey(sealer, key, id, 1);
      const t = now();
      // The row and its wrapped key, in one transaction, before anything exists on disk.
      db.query(
        `INSERT INTO volumes (id, project_id, platform, backend, device, filesystem, size_bytes, state, key_generation, sealed_key, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'creating', 1, ?, ?, ?)`,
      ).run(id, ref.projectId, ref.platform, deps.backend.kind, devicePathFor(id), deps.filesystem, size, sealed, t, t);
      const r = reload(id);
      try {
        await allocate(r);
        await cs.format(r.device, key);
        await cs.open(r.device, mapperName(id), key, { discards: deps.discards });
        await mkfs(r);
        db.query("UPDATE volumes SET state = 'ready', updated_at = ? WHERE id = ?").run(now(), id);
      } catch (e) {
        log.warn("creating a cache volume failed; removing what was made", {
          volume: id,
          project: ref.projectId,
          platform: ref.platform,
          error: e,
        });
        await destroy(r).catch((e2) =>
          log.error("cleaning up a failed volume failed; the next start finishes it", { volume: id, error: e2 }),
        );
        throw e;
      }
      log.info("created encrypted cache volume", {
        volume: id,
        project: ref.projectId,
        platform: ref.platform,
        size_bytes: size,
        backend: deps.backend.kind,
        filesystem: deps.filesystem,
        encryption: "luks2",
      });
      return reload(id);
    } finally {
      key.fill(0);
    }
  }

  /** Close, crypto-erase, remove the backing, forget: each step safe to repeat after a crash. */
  async function destroy(r: Row): Promise<void> {
    await closeRow(r);
    db.query("UPDATE volumes SET state = 'erasing', updated_at = ? WHERE id = ?").run(now(), r.id);
    if ((await backingExists(r)) && (await cs.isLuks(r.device))) await cs.erase(r.device);
    await removeBacking(r);
    db.query("DELETE FROM volumes WHERE id = ?").run(r.id);
    try {
      rmdirSync(mountPoint(refOf(r)));
    } catch {}
  }

  // --- key rotation --------------------------------------------------------------------------
  async function killOtherSlots(r: Row): Promise<void> {
    const key = await keyOf(r);
    try {
      const keep = await cs.testKey(r.device, key);
      if (keep === null || keep < 0)
        throw new PreconditionError(`volume ${r.id}: its stored key opens no keyslot; refusing to kill any`);
      for (const s of await cs.slots(r.device)) if (s !== keep) await cs.killSlot(r.device, s);
    } finally {
      key.fill(0);
    }
    db.query("UPDATE volumes SET rotation = NULL, updated_at = ? WHERE id = ?").run(now(), r.id);
  }

  async function promote(r: Row): Promise<Row> {
    db.query(
      `UPDATE volumes SET key_generation = pending_key_generation, sealed_key = pending_sealed_key, rotation = 'killing',
         pending_key_generation = NULL, pending_sealed_key = NULL, updated_at = ? WHERE id = ? AND rotation = 'adding'`,
    ).run(now(), r.id);
    return reload(r.id);
  }

  /** Finishes (or rolls back) a rotation a crash interrupted. */
  async function finishRotation(r: Row): Promise<Row> {
    if (r.rotation === "adding") {
      const pk = await unwrapVolumeKey(sealer, r.pending_sealed_key!, r.id, r.pending_key_generation!);
      const slot = await cs.testKey(r.device, pk);
      pk.fill(0);
      if (slot === null) {
        db.query(
          "UPDATE volumes SET rotation = NULL, pending_key_generation = NULL, pending_sealed_key = NULL, updated_at = ? WHERE id = ?",
        ).run(now(), r.id);
        return reload(r.id);
      }
      r = await promote(r);
    }
    if (r.rotation === "killing") await killOtherSlots(r);
    return reload(r.id);
  }

  async function rotateKey(ref: VolumeRef): Promise<{ generation: number }> {
    return locked(ref, async () => {
      let r = get(ref);
      if (r?.state !== "ready") throw new NotFoundError(`no cache volume for ${ref.projectId} ${ref.platform}`);
      if (r.rotation) r = await finishRotation(r);
      const gen = r.key_generation + 1;
      const oldKey = await keyOf(r);
      const newKey = newVolumeKey();
      try {
        const sealed = await wrapVolumeKey(sealer, newKey, r.id, gen);
        db.query(
          "UPDATE volumes SET rotation = 'adding', pending_key_generation = ?, pending_sealed_key = ?, updated_at = ? WHERE id = ?",
        ).run(gen, sealed, now(), r.id);
        await cs.addKey(r.device, oldKey, newKey);
      } finally {
        oldKey.fill(0);
        newKey.fill(0);
      }
      r = await promote(reload(r.id));
      await killOtherSlots(r);
      log.info("rotated cache volume key", {
        volume: r.id,
        project: ref.projectId,
        platform: ref.platform,
        generation: gen,
      });
      return { generation: gen };
    });
  }

  /** Brings a row out of any interrupted state: a ready row (maybe null when it was erased). */
  async function settle(r: Row | null): Promise<Row | null> {
    if (!r) return null;
    if (r.state !== "ready") {
      log.warn(
        r.state === "creating"
          ? "cache volume creation was interrupted; erasing it to recreate"
          : "finishing an interrupted cache volume erase",
        { volume: r.id },
      );
      await destroy(r);
      return null;
    }
    if (r.rotation) return finishRotation(r);
    return r;
  }

  const manager: LuksVolumeManager = {
    encryption: "luks2",

    ensure(ref, sizeBytes) {
      return locked(ref, async () => {
        const r = (await settle(get(ref))) ?? (await create(ref, sizeBytes));
        return openAndMount(r);
      });
    },

    close(ref) {
      return locked(ref, async () => {
        const r = get(ref);
        if (r) await closeRow(r);
      });
    },

    grow(ref, sizeBytes) {
      return locked(ref, async () => {
        let r = await settle(get(ref));
        if (!r) throw new NotFoundError(`no cache volume for ${ref.projectId} ${ref.platform}`);
        await openAndMount(r);
        const size = Math.ceil(sizeBytes / 4096) * 4096;
        if (size <= r.size_bytes) return mounted(r);
        if (r.backend === "file") {
          const fd = openSync(r.device, "r+");
          try {
            ftruncateSync(fd, size);
          } finally {
            closeSync(fd);
          }
          const loop = await cs.loopDevice(mapperName(r.id));
          if (loop) await must(run, ["losetup", "--set-capacity", loop]);
        } else {
          await must(run, ["lvextend", "--size", `${size}b`, r.device.replace(/^\/dev\//, "")]);
        }
        const key = await keyOf(r);
        try {
          await cs.resize(mapperName(r.id), key);
        } finally {
          key.fill(0);
        }
        if (r.filesystem === "ext4") await must(run, ["resize2fs", mapperDev(r.id)]);
        else await must(run, ["xfs_growfs", mountPoint(ref)]);
        db.query("UPDATE volumes SET size_bytes = ?, updated_at = ? WHERE id = ?").run(size, now(), r.id);
        r = reload(r.id);
        log.info("grew cache volume", { volume: r.id, size_bytes: size });
        return mounted(r);
      });
    },

    reset(ref) {
      return locked(ref, async () => {
        const r = get(ref);
        if (!r) return;
        await destroy(r);
        const fresh = await create(ref, r.size_bytes);
        await closeRow(fresh);
        log.info("reset cache volume: crypto-erased, recreated with a new key", {
          old_volume: r.id,
          volume: fresh.id,
          project: ref.projectId,
          platform: ref.platform,
        });
      });
    },

    delete(ref) {
      return locked(ref, async () => {
        const r = get(ref);
        if (!r) return;
        await destroy(r);
        log.info("deleted cache volume (crypto-erased)", {
          volume: r.id,
          project: ref.projectId,
          platform: ref.platform,
        });
      });
    },

    async usage(ref): Promise<VolumeUsage | null> {
      const r = get(ref);
      if (r?.state !== "ready") return null;
      const path = mountPoint(ref);
      if (isMounted(path)) {
        const s = statfsSync(path);
        return { usedBytes: (s.blocks - s.bfree) * s.bsize, sizeBytes: r.size_bytes };
      }
      // Closed: what the backing holds on disk (a sparse image's allocated blocks).
      return {
        usedBytes: r.backend === "file" && existsSync(r.device) ? statSync(r.device).blocks * 512 : r.size_bytes,
        sizeBytes: r.size_bytes,
      };
    },

    rotateKey,

    async reconcile(needed) {
      const report: ReconcileReport = {
        recreated: [],
        erased: [],
        rotations: [],
        closed: [],
        reopened: [],
        orphans: [],
      };
      for (const r of db.query("SELECT * FROM volumes").all() as Row[]) {
        await locked(refOf(r), async () => {
          if (r.state !== "ready") (r.state === "creating" ? report.recreated : report.erased).push(r.id);
          else if (r.rotation) report.rotations.push(r.id);
          await settle(r);
        });
      }
      const rows = db.query("SELECT * FROM volumes").all() as Row[];
      const wanted = new Set(needed.map((n) => volumeName(n)));
      const byMapper = new Map(rows.map((r) => [mapperName(r.id), r]));
      // Mappings: close those no row knows, and those no running builder needs.
      for (const name of sys.mappings()) {
        if (!name.startsWith(MAPPER_PREFIX)) continue;
        const r = byMapper.get(name);
        if (r && wanted.has(volumeName(refOf(r)))) continue;
        const id = name.slice(MAPPER_PREFIX.length);
        await closeRow(r ?? { id, project_id: "", platform: "" });
        report.closed.push(id);
      }
      // Mount points under mnt/ with no open mapping behind them (or no volume): unmount.
      for (const m of parseMountinfo(sys.mountinfo())) {
        if (!m.mountPoint.startsWith(`${mnt}/`)) continue;
        const r = rows.find((x) => mountPoint(refOf(x)) === m.mountPoint);
        if (r && wanted.has(volumeName(refOf(r)))) continue;
        await must(run, ["umount", m.mountPoint]);
        if (r && !report.closed.includes(r.id)) report.closed.push(r.id);
      }
      for (const r of rows) {
        if (!wanted.has(volumeName(refOf(r)))) continue;
        const open = isOpen(r.id) && isMounted(mountPoint(refOf(r)));
        await locked(refOf(r), () => openAndMount(r));
        if (!open) report.reopened.push(r.id);
      }
      // Image files no row names: written by a volume whose row is gone, so no key opens them.
      if (existsSync(images)) {
        const known = new Set(rows.map((r) => r.device));
        for (const f of readdirSync(images)) {
          const p = join(images, f);
          if (known.has(p)) continue;
          if (await cs.isLuks(p)) await cs.erase(p);
          unlinkSync(p);
          report.orphans.push(f);
        }
      }
      const changed = Object.values(report).some((l) => l.length > 0);
      if (changed) log.info("reconciled cache volumes with the database", { ...report });
      return report;
    },
  };
  return manager;
}
