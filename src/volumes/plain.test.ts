import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { plainVolumeManager, volumeName } from "./plain.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
const root = () => {
  const d = mkdtempSync(join(tmpdir(), "slipway-vol-"));
  dirs.push(d);
  return d;
};

describe("plain volumes", () => {
  test("ensure is idempotent, keeps data, reports encryption none and usage", async () => {
    const vm = plainVolumeManager({ root: root() });
    const ref = { projectId: "prj_a", platform: "linux/amd64" };
    const v = await vm.ensure(ref, 1 << 30);
    expect(v.encryption).toBe("none");
    writeFileSync(join(v.path, "marker"), "x".repeat(10_000));
    const again = await vm.ensure(ref, 1 << 30);
    expect(again.path).toBe(v.path);
    expect(existsSync(join(again.path, "marker"))).toBe(true);
    expect((await vm.usage(ref))!.usedBytes).toBeGreaterThanOrEqual(10_000);
    expect(await vm.usage({ projectId: "prj_b", platform: "linux/amd64" })).toBeNull();
  });

  test("reset empties, projects and platforms never share a directory", async () => {
    const r = root();
    const vm = plainVolumeManager({ root: r });
    const a = await vm.ensure({ projectId: "prj_a", platform: "linux/amd64" }, 0);
    const b = await vm.ensure({ projectId: "prj_b", platform: "linux/amd64" }, 0);
    const a2 = await vm.ensure({ projectId: "prj_a", platform: "linux/arm64" }, 0);
    expect(new Set([a.path, b.path, a2.path]).size).toBe(3);
    writeFileSync(join(a.path, "marker"), "x");
    writeFileSync(join(b.path, "marker"), "x");
    await vm.reset({ projectId: "prj_a", platform: "linux/amd64" });
    const fresh = await vm.ensure({ projectId: "prj_a", platform: "linux/amd64" }, 0);
    expect(readdirSync(fresh.path)).toEqual([]);
    expect(existsSync(join(b.path, "marker"))).toBe(true);
    expect(readdirSync(r).some((n) => n.includes("deleting"))).toBe(false);
  });

  test("names refuse path tricks", () => {
    expect(() => volumeName({ projectId: "../x", platform: "linux/amd64" })).toThrow();
    expect(() => volumeName({ projectId: "prj_a", platform: "linux/../../etc" })).toThrow();
    expect(volumeName({ projectId: "prj_a", platform: "linux/arm64/v8" })).toBe("prj_a--linux-arm64-v8");
  });
});
