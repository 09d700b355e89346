/**
 * @module builders/service.test
 * Which platforms a builder request accepts on an amd64 engine: the native one, and another only
 * when builders.allow_emulation is on and the binfmt handler can serve it; each refusal names
 * its fix. The engine is a stand-in answering only `info` (the refusals come before any
 * container or database work); builders for real are in test/e2e/multiplatform.test.ts.
 */
import type { Database } from "bun:sqlite";
import type Docker from "dockerode";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PreconditionError, InvalidInputError } from "../errors.ts";
import { silentLogger } from "../log/logger.ts";
import { applyMigrations, openDatabase } from "../db/index.ts";
import { builderServiceFactory } from "./service.ts";
import { policyNames } from "./network-policy.ts";
import { builderTableDeps } from "../../test/support/builder-deps.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const binfmt = (files: Record<string, string>) => {
  const d = mkdtempSync(join(tmpdir(), "binfmt-"));
  dirs.push(d);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
};

const manager = (allowEmulation: boolean, binfmtDir: string) =>
  builderServiceFactory({
    db: {} as Database,
    projects: {} as never,
    orgs: {} as never,
    docker: { info: async () => ({ Architecture: "x86_64" }) } as unknown as Docker,
    volumes: {} as never,
    applianceId: "app_test",
    dataDir: tmpdir(),
    runtime: "dockerd",
    image: "slipway/builder-dockerd:test",
    log: silentLogger,
    allowEmulation,
    binfmtDir,
  });

const refusal = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => null,
    (x: Error) => x,
  );
  expect(e).toBeInstanceOf(PreconditionError);
  return e!.message;
};

describe("platforms a builder request accepts", () => {
  const ref = { projectId: "prj_1", platform: "linux/arm64" };

  test("another architecture with emulation off: refused, naming the setting and the package", async () => {
    const m = await refusal(manager(false, binfmt({ status: "enabled\n" })).request(ref, "bld_1"));
    expect(m).toContain("platform linux/arm64 is not this host's (linux/amd64) and QEMU emulation is off");
    expect(m).toContain("builders.allow_emulation = true");
    expect(m).toContain("qemu-user-static");
  });

  test("emulation on but no usable handler: refused, naming what is missing", async () => {
    expect(await refusal(manager(true, binfmt({ status: "enabled\n" })).request(ref, "bld_1"))).toContain(
      "the qemu-aarch64 binfmt handler is not registered",
    );
    const noF = binfmt({
      status: "enabled\n",
      "qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PO\n",
    });
    expect(await refusal(manager(true, noF).acquire(ref, "bld_1"))).toContain("fix-binary flag (F)");
    expect(await refusal(manager(true, join(tmpdir(), "no-binfmt-here")).request(ref, "bld_1"))).toContain(
      "binfmt_misc is not mounted",
    );
  });

  test("what is no platform is invalid input, not a precondition", async () => {
    const e = await manager(true, binfmt({}))
      .request({ projectId: "prj_1", platform: "windows/amd64" }, "bld_1")
      .catch((x: Error) => x);
    expect(e).toBeInstanceOf(InvalidInputError);
  });

  test("emulation status reports the other depot platform", async () => {
    const ok = binfmt({
      status: "enabled\n",
      "qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n",
    });
    expect(await manager(true, ok).emulation()).toMatchObject({
      platform: "linux/arm64",
      allowed: true,
      problem: null,
    });
  });
});

describe("fail closed: no builder starts while the network policy is not in force", () => {
  test("acquire and request are refused with the policy's reason; nothing is created", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mgr-policy-"));
    dirs.push(dir);
    const db = openDatabase(join(dir, "t.db"));
    applyMigrations(db);
    const at = new Date().toISOString();
    db.query("INSERT INTO organizations (id, slug, name, created_at) VALUES ('org_1', 'one', 'One', ?)").run(at);
    db.query("INSERT INTO projects (id, org_id, name, created_at) VALUES ('prj_1', 'org_1', 'p', ?)").run(at);
    const touched: string[] = [];
    const docker = new Proxy({ info: async () => ({ Architecture: "x86_64" }) } as Record<string, unknown>, {
      get: (t, k: string) =>
        t[k] ?? ((..._: unknown[]) => (touched.push(k), Promise.reject(new Error(`unexpected docker.${k}`)))),
    }) as unknown as Docker;
    const names = policyNames("app_test");
    const m = builderServiceFactory({
      db,
      ...builderTableDeps(db),
      docker,
      volumes: { ensure: async () => (touched.push("volume"), { path: dir, sizeBytes: 1 }) } as never,
      applianceId: "app_test",
      dataDir: dir,
      runtime: "dockerd",
      image: "slipway/builder-dockerd:test",
      log: silentLogger,
      networkPolicy: { names, refusal: () => "builders cannot start unfiltered: iptables-restore failed" },
    });
    const ref = { projectId: "prj_1", platform: "linux/amd64" };
    expect(await refusal(m.acquire(ref, "bld_1"))).toContain("builders cannot start unfiltered");
    // bld_1 heard its failure (an exception): bld_2's request starts anew and its next poll is told.
    expect(await m.request(ref, "bld_2")).toEqual({ state: "starting" });
    const deadline = Date.now() + 30_000;
    let status = await m.request(ref, "bld_2");
    while (status.state === "starting" && Date.now() < deadline)
      status = (await Bun.sleep(10), await m.request(ref, "bld_2"));
    expect(status).toEqual({ state: "failed", error: "builders cannot start unfiltered: iptables-restore failed" });
    expect(touched).toEqual([]);
    db.close();
  });
});
