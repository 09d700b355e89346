/**
 * @module doctor/checks.test
 * What doctor reports: data dir and master key problems, busy ports, and — against the real
 * tools, which CI installs — Docker's API version, cryptsetup, iptables' backend and ipset.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../config/index.ts";
import { which } from "../host/run.ts";
import { integrationSuite } from "../../test/support/integration.ts";
import { freePort } from "../../test/support/serve.ts";
import {
  checkBuilderCurrency,
  checkBuilderImage,
  checkCryptsetup,
  checkDataDir,
  checkDocker,
  checkEmulation,
  checkFirewall,
  checkMasterKey,
  checkPorts,
  checkRegistry,
  dockerSocketPath,
} from "./checks.ts";

let dir: string;
beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "slipway-doctor-"))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const loaded = (dataDir: string, overrides: { key: string; value: string }[] = []) =>
  loadConfig({
    uid: 1000,
    env: { HOME: dir },
    overrides: [
      { key: "data.dir", value: dataDir, source: "test" },
      ...overrides.map((o) => ({ ...o, source: "test" })),
    ],
  });

describe("data dir", () => {
  test("missing but creatable is ok; a file in the way fails; open modes warn", () => {
    expect(checkDataDir(join(dir, "new")).status).toBe("ok");
    writeFileSync(join(dir, "file"), "");
    const f = checkDataDir(join(dir, "file", "sub"));
    expect(f.status).toBe("fail");
    expect(f.fix).toBeDefined();
    mkdirSync(join(dir, "open"), { mode: 0o755 });
    chmodSync(join(dir, "open"), 0o755);
    expect(checkDataDir(join(dir, "open"))).toMatchObject({ status: "warn", fix: `chmod 700 ${join(dir, "open")}` });
    mkdirSync(join(dir, "closed"), { mode: 0o700 });
    expect(checkDataDir(join(dir, "closed")).status).toBe("ok");
  });
});

describe("registry", () => {
  test("a missing docker-registry warns with the package to install; disabled is ok and says so", () => {
    const d = join(dir, "reg");
    const missingBin = checkRegistry(loaded(d, [{ key: "registry.binary", value: join(dir, "no-such-registry") }]));
    expect(missingBin).toMatchObject({ status: "warn", fix: "apt-get install docker-registry" });
    expect(missingBin.message).toContain("--save");
    expect(checkRegistry(loaded(d, [{ key: "registry.enabled", value: "false" }])).message).toContain("disabled");
    expect(checkRegistry(loaded(d, [{ key: "registry.binary", value: "/bin/sh" }])).status).toBe("ok");
  });
});

describe("master key", () => {
  test("absent on a fresh data dir is ok; group-readable fails; absent beside a database fails", () => {
    const d = join(dir, "mk");
    mkdirSync(d, { mode: 0o700 });
    expect(checkMasterKey(loaded(d), {}).status).toBe("ok");
    writeFileSync(join(d, "master.key"), "x", { mode: 0o640 });
    chmodSync(join(d, "master.key"), 0o640);
    expect(checkMasterKey(loaded(d), {})).toMatchObject({ status: "fail", fix: `chmod 600 ${join(d, "master.key")}` });
    chmodSync(join(d, "master.key"), 0o600);
    expect(checkMasterKey(loaded(d), {}).status).toBe("ok");
    rmSync(join(d, "master.key"));
    writeFileSync(join(d, "slipway.db"), "");
    expect(checkMasterKey(loaded(d), {}).status).toBe("fail");
  });

  test("a systemd credential is found and reported", () => {
    const creds = join(dir, "creds");
    mkdirSync(creds);
    writeFileSync(join(creds, "slipway-master-key"), "k", { mode: 0o400 });
    expect(checkMasterKey(loaded(join(dir, "x")), { CREDENTIALS_DIRECTORY: creds }).message).toContain(
      "systemd-credential",
    );
  });
});

describe("ports", () => {
  let busy: Server;
  let port: number;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    port = (busy.address() as { port: number }).port;
  });
  afterAll(() => busy.close());

  test("a port in use fails with a fix; a free one is ok", async () => {
    const free = await freePort();
    const findings = await checkPorts(
      loaded(join(dir, "p"), [
        { key: "server.listen", value: `127.0.0.1:${port}` },
        { key: "server.build_listen", value: `127.0.0.1:${free}` },
      ]),
    );
    expect(findings[0]).toMatchObject({ check: "port:server.listen", status: "fail" });
    expect(findings[0]!.message).toContain("already in use");
    expect(findings[0]!.fix).toContain("server.listen");
    expect(findings[1]).toMatchObject({ check: "port:server.build_listen", status: "ok" });
  });
});

describe("docker socket path", () => {
  test("DOCKER_HOST unix:// wins over the default", () => {
    expect(dockerSocketPath({})).toBe("/var/run/docker.sock");
    expect(dockerSocketPath({ DOCKER_HOST: "unix:///run/user/1000/docker.sock" })).toBe("/run/user/1000/docker.sock");
  });

  test("a socket that is not there is a warning with a fix, not a crash", async () => {
    const f = await checkDocker({ DOCKER_HOST: `unix://${join(dir, "no.sock")}` });
    expect(f.status).toBe("warn");
    expect(f.fix).toContain("docker");
  });
});

integrationSuite(
  "doctor against the real Docker engine",
  existsSync("/var/run/docker.sock") ? null : "no Docker engine at /var/run/docker.sock",
  () => {
    test("reports the engine version and API version", async () => {
      const f = await checkDocker({});
      expect(f.status).toBe("ok");
      const r = await fetch("http://docker/version", { unix: "/var/run/docker.sock" });
      const v = (await r.json()) as { Version: string; ApiVersion: string };
      expect(f.message).toBe(`Docker Engine ${v.Version} (API ${v.ApiVersion}) at /var/run/docker.sock`);
    });

    test("names the configured builder runtime and image, and warns with a fix when it is absent", async () => {
      const docker = await checkDocker({});
      const absent = `slipway/builder-dockerd:absent-${crypto.randomUUID().slice(0, 8)}`;
      const f = await checkBuilderImage(
        loaded(join(dir, "bi"), [{ key: "builders.dockerd_image", value: absent }]),
        {},
        docker,
      );
      expect(f).toMatchObject({ check: "builder-image", status: "warn" });
      expect(f.message).toBe(
        `runtime dockerd, image ${absent}: not present on the Docker engine, builders cannot start`,
      );
      expect(f.fix).toContain(`slipway builder-image build --tag ${absent}`);
      const k = await checkBuilderImage(
        loaded(join(dir, "bi"), [
          { key: "builders.runtime", value: "buildkitd" },
          { key: "builders.buildkitd_image", value: absent },
        ]),
        {},
        docker,
      );
      expect(k.fix).toContain("slipway builder-image import FILE.tar");
      const noDocker = await checkBuilderImage(loaded(join(dir, "bi")), {}, { ...docker, status: "warn" });
      expect(noDocker.message).toBe(
        "runtime dockerd, image slipway/builder-dockerd:trixie: cannot check without Docker",
      );
    });

    test("builders on an old image: nothing to say before the appliance exists or without Docker", async () => {
      // The finding itself, old → new per builder, is shown against real builders in test/e2e/builder-upgrade.test.ts.
      const docker = await checkDocker({});
      expect(await checkBuilderCurrency(loaded(join(dir, "fresh")), {}, docker)).toEqual([]);
      expect(await checkBuilderCurrency(loaded(join(dir, "fresh")), {}, { ...docker, status: "warn" })).toEqual([]);
    });
  },
);

const missingTools = ["cryptsetup", "iptables", "ipset"].filter((t) => !which(t));
integrationSuite(
  "doctor against real cryptsetup, iptables and ipset",
  missingTools.length ? `not installed: ${missingTools.join(", ")}` : null,
  () => {
    test("cryptsetup version, and a dm-crypt verdict either way", async () => {
      const [cs, dm] = await checkCryptsetup();
      expect(cs).toMatchObject({ check: "cryptsetup", status: "ok" });
      expect(cs!.message).toMatch(/^cryptsetup \d+\.\d+/);
      expect(dm!.check).toBe("dm-crypt");
      expect(dm!.status === "ok" ? existsSync("/dev/mapper/control") : Boolean(dm!.fix)).toBe(true);
    });

    test("iptables backend and ipset version", async () => {
      const [ipt, ips] = await checkFirewall();
      expect(ipt).toMatchObject({ check: "iptables", status: "ok" });
      expect(ipt!.message).toMatch(/iptables v\d.*\(backend: (nf_tables|legacy)\)/);
      expect(ips).toMatchObject({ check: "ipset", status: "ok" });
      expect(ips!.message).toMatch(/^ipset v\d/);
    });
  },
);

describe("emulation", () => {
  const binfmt = (files: Record<string, string>) => {
    const d = mkdtempSync(join(dir, "binfmt-"));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
    return d;
  };
  const aarch64 = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n";

  test("says whether the handler can serve and whether builders.allow_emulation enables it", () => {
    const good = binfmt({ status: "enabled\n", "qemu-aarch64": aarch64 });
    expect(checkEmulation(loaded(join(dir, "d1")), good)).toMatchObject({
      check: "emulation",
      status: "ok",
      message: expect.stringContaining("not enabled (builders.allow_emulation = false"),
    });
    expect(
      checkEmulation(loaded(join(dir, "d1"), [{ key: "builders.allow_emulation", value: "true" }]), good),
    ).toMatchObject({ status: "ok", message: expect.stringContaining("and enabled") });
    // Enabled but no handler: builds will be refused, and the fix is named.
    const none = binfmt({ status: "enabled\n" });
    expect(
      checkEmulation(loaded(join(dir, "d1"), [{ key: "builders.allow_emulation", value: "true" }]), none),
    ).toMatchObject({
      status: "warn",
      fix: "apt-get install qemu-user-static",
      message: expect.stringContaining("will be refused"),
    });
  });
});
