/**
 * @module test/e2e/multiplatform.test
 * Multi-platform builds end to end: the depot CLI, unchanged, builds `--platform
 * linux/amd64,linux/arm64` as one build on two builders (one per platform) of the Debian trixie
 * `dockerd` image, on an amd64 host whose arm64 RUN steps run under the kernel's qemu-aarch64
 * binfmt handler (qemu-user-static, fix-binary flag). Each platform's userland is a static
 * busybox: the host's for amd64, Debian's busybox-static:arm64 for arm64 (fetched by .ci/run).
 * The result is pushed to Debian's docker-registry as one OCI index; the test reads the index,
 * both manifests and their layers back and checks what each platform's RUN step wrote. A second
 * appliance, with emulation off, refuses the same build with a message naming the setting.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emulationProblem } from "../../src/builders/index.ts";
import { findBuildkitClient } from "../../src/cli/client/build-session.ts";
import { which } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
import { DEPOT, depotEnv, finished } from "../support/depot.ts";
import { builderImageMissing, busyboxPath, CACHE_DIR, ensureDockerdBuilderImage } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { pushingServeArgs, startPlainRegistry, type PlainRegistry } from "../support/plain-registry.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const BUSYBOX_ARM64 = join(CACHE_DIR, "busybox-arm64");
const missing =
  process.arch !== "x64"
    ? `this test emulates arm64 on an amd64 host; this one is ${process.arch}`
    : !existsSync(DEPOT)
      ? `the depot CLI is not installed (${DEPOT})`
      : !which("docker-registry")
        ? "docker-registry is not installed (apt-get install docker-registry)"
        : !existsSync(BUSYBOX_ARM64)
          ? `no arm64 busybox at ${BUSYBOX_ARM64} (.ci/run fetches Debian's busybox-static:arm64 there)`
          : (emulationProblem("linux/arm64") ?? (await builderImageMissing("trixie")));

/** A Dockerfile whose RUN step records the architecture it ran on, per platform. */
function writeContext(dir: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(busyboxPath(), join(dir, "busybox-amd64"));
  copyFileSync(BUSYBOX_ARM64, join(dir, "busybox-arm64"));
  writeFileSync(
    join(dir, "Dockerfile"),
    [
      "FROM scratch",
      "ARG TARGETARCH",
      "COPY busybox-$TARGETARCH /bin/busybox",
      'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /arch.txt"]',
      "",
    ].join("\n"),
  );
}

/** The named file's content in an (optionally gzipped) tar layer, or null. */
function fileInLayer(bytes: Uint8Array<ArrayBuffer>, name: string): string | null {
  const tar = bytes[0] === 0x1f && bytes[1] === 0x8b ? Bun.gunzipSync(bytes) : bytes;
  const text = new TextDecoder();
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const path = text.decode(header.subarray(0, 100)).replace(/\0.*$/s, "").replace(/^\.\//, "");
    const size = parseInt(text.decode(header.subarray(124, 136)).replace(/\0.*$/s, "").trim() || "0", 8);
    if (path === name) return text.decode(tar.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return null;
}

integrationSuite("multi-platform builds: amd64 and emulated arm64 through the depot CLI", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-multiplatform-"));
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  const ctx = join(work, "ctx");
  let on: Served; // builders.allow_emulation = true
  let off: Served; // the default: false
  let registry: PlainRegistry | null = null;
  let regPort = 0;
  const projects: { on: { id: string; token: string; admin: string }; off: { id: string; token: string } } = {
    on: { id: "", token: "", admin: "" },
    off: { id: "", token: "" },
  };

  const depot = (s: Served, project: { id: string; token: string }, args: string[]) => {
    const p = Bun.spawn([DEPOT, "build", "--project", project.id, "--progress", "plain", ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv(s, work, project.token),
    });
    return finished(p);
  };

  const appliance = async (name: string, extra: string[]) => {
    const image = await ensureDockerdBuilderImage({ suite: "trixie" });
    const dataDir = join(work, name);
    const s = await serve(
      slipwayBinary(),
      dataDir,
      [...pushingServeArgs(image.ref), ...extra],
      {},
      { publicHost: "localhost" },
    );
    const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const post = async (path: string, body: unknown) =>
      (
        await s.get(path, {
          method: "POST",
          headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        })
      ).json() as Promise<Record<string, string>>;
    const id = (await post("/api/v1/orgs/default/projects", { name: "multi" })).id!;
    const token = (await post("/api/v1/tokens", { kind: "project", name: "ci", project: id })).token!;
    return { s, project: { id, token, admin } };
  };

  beforeAll(async () => {
    writeContext(ctx);
    registry = await startPlainRegistry(work);
    regPort = registry.port;
    const a = await appliance("on", ["--set", "builders.allow_emulation=true"]);
    on = a.s;
    projects.on = a.project;
    const b = await appliance("off", []);
    off = b.s;
    projects.off = b.project;
  }, 20 * 60_000);

  afterAll(async () => {
    await on?.stop();
    await off?.stop();
    registry?.stop();
    await removeBuildersOf([projects.on.id, projects.off.id], docker);
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    rmSync(work, { recursive: true, force: true });
  });

  const api = async <T>(path: string): Promise<T> => {
    const r = await on.get(path, { headers: { authorization: `Bearer ${projects.on.admin}` } });
    expect(r.status).toBe(200);
    return (await r.json()) as T;
  };

  test("one build, two builders: each platform's RUN step ran on its own architecture (arm64 under QEMU)", async () => {
    const out = join(work, "out");
    const r = await depot(on, projects.on, [
      "--platform",
      "linux/amd64,linux/arm64",
      "--output",
      `type=local,dest=${out}`,
      ctx,
    ]);
    expect(r.code, r.log).toBe(0);
    // Several platforms in a local export: one directory per platform.
    expect(readFileSync(join(out, "linux_amd64", "arch.txt"), "utf8").trim()).toBe("x86_64");
    expect(readFileSync(join(out, "linux_arm64", "arch.txt"), "utf8").trim()).toBe("aarch64");

    const builds = await api<{ builds: { id: string; status: string; platforms: string[] }[] }>(
      `/api/v1/projects/${projects.on.id}/builds`,
    );
    expect(builds.builds.length).toBe(1); // one build id for both platforms
    expect(builds.builds[0]!.status).toBe("finished");
    expect([...builds.builds[0]!.platforms].sort()).toEqual(["linux/amd64", "linux/arm64"]);
    const builders = await api<{ platform: string; emulated: boolean; runtime: string; state: string }[]>(
      `/api/v1/projects/${projects.on.id}/builders`,
    );
    expect(builders.map((b) => [b.platform, b.emulated, b.runtime])).toEqual([
      ["linux/amd64", false, "dockerd"],
      ["linux/arm64", true, "dockerd"],
    ]);
    expect(builders.every((b) => b.state === "ready" || b.state === "idle")).toBe(true);
    const containers = await docker.listContainers({
      filters: JSON.stringify({ label: [`io.slipway.project=${projects.on.id}`] }),
    });
    expect(containers.map((c) => c.Labels["io.slipway.platform"]).sort()).toEqual(["linux/amd64", "linux/arm64"]);

    const ready = (await (await on.get("/readyz")).json()) as {
      checks: Record<string, { status: string; output: string }[]>;
    };
    expect(ready.checks["builders:emulation"]![0]!.status).toBe("pass");
    expect(ready.checks["builders:emulation"]![0]!.output).toContain(
      "linux/arm64 emulation is available (qemu-aarch64 registered, enabled, flags F), and enabled",
    );
  }, 900_000);

  test("--push makes one OCI index with both platforms; each image's RUN output is its architecture", async () => {
    const c = (
      (await docker.listContainers({
        filters: JSON.stringify({ label: [`io.slipway.project=${projects.on.id}`] }),
      })) as { NetworkSettings: { Networks: Record<string, { NetworkID: string }> } }[]
    )[0]!;
    const net = (await docker.getNetwork(Object.values(c.NetworkSettings.Networks)[0]!.NetworkID).inspect()) as {
      IPAM: { Config: { Gateway: string }[] };
    };
    const ref = `${net.IPAM.Config[0]!.Gateway}:${regPort}/slipway/multi:1`;
    // The builders push each platform by digest; the CLI then writes the index itself, over
    // plain HTTP only because the output says the registry is insecure.
    const pushed = await depot(on, projects.on, [
      "--platform",
      "linux/amd64,linux/arm64",
      "-t",
      ref,
      "--push",
      "--output",
      "type=image,registry.insecure=true",
      ctx,
    ]);
    expect(pushed.code, pushed.log).toBe(0);

    type Descriptor = { mediaType: string; digest: string; platform?: { architecture: string; os: string } };
    const accept =
      "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json";
    const base = `http://127.0.0.1:${regPort}/v2/slipway/multi`;
    const res = await fetch(`${base}/manifests/1`, { headers: { accept } });
    expect(res.status).toBe(200);
    const index = (await res.json()) as { mediaType: string; manifests: Descriptor[] };
    expect(res.headers.get("content-type")).toBe("application/vnd.oci.image.index.v1+json");
    const images = index.manifests.filter((m) => m.platform && m.platform.architecture !== "unknown");
    expect(images.map((m) => `${m.platform!.os}/${m.platform!.architecture}`).sort()).toEqual([
      "linux/amd64",
      "linux/arm64",
    ]);

    const blob = async (digest: string) => {
      const r = await fetch(`${base}/blobs/${digest}`);
      expect(r.status).toBe(200);
      const bytes = new Uint8Array(await r.arrayBuffer());
      expect(`sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`).toBe(digest);
      return bytes;
    };
    const ran: Record<string, string> = {};
    for (const m of images) {
      const manifest = (await (await fetch(`${base}/manifests/${m.digest}`, { headers: { accept } })).json()) as {
        config: { digest: string };
        layers: { digest: string }[];
      };
      const config = JSON.parse(new TextDecoder().decode(await blob(manifest.config.digest))) as {
        architecture: string;
        os: string;
      };
      expect(config.architecture).toBe(m.platform!.architecture);
      for (const l of manifest.layers) {
        const arch = fileInLayer(await blob(l.digest), "arch.txt");
        if (arch !== null) ran[config.architecture] = arch.trim();
      }
    }
    expect(ran).toEqual({ amd64: "x86_64", arm64: "aarch64" });
  }, 900_000);

  test("slipway build --platform linux/amd64,linux/arm64: the same through docker-buildx, one node per platform", async () => {
    const buildx = findBuildkitClient({ HOME: work, PATH: process.env.PATH ?? "" });
    expect(buildx?.kind, "docker-buildx is needed (.ci/run installs trixie's)").toBe("buildx");
    const out = join(work, "out-slipway");
    const p = Bun.spawn(
      [
        slipwayBinary(),
        "build",
        "--server",
        on.url,
        "--cacert",
        join(on.dataDir, "ca.pem"),
        "--project",
        projects.on.id,
        "--progress",
        "plain",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        `type=local,dest=${out}`,
        ctx,
      ],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", HOME: work, SLIPWAY_TOKEN: projects.on.token },
      },
    );
    const [o, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(code, o + e).toBe(0);
    expect(e).toContain("on linux/amd64, linux/arm64 with buildx");
    expect(readFileSync(join(out, "linux_amd64", "arch.txt"), "utf8").trim()).toBe("x86_64");
    expect(readFileSync(join(out, "linux_arm64", "arch.txt"), "utf8").trim()).toBe("aarch64");
    const latest = (
      await api<{ builds: { platforms: string[]; status: string }[] }>(`/api/v1/projects/${projects.on.id}/builds`)
    ).builds[0]!;
    expect(latest.status).toBe("finished");
    expect([...latest.platforms].sort()).toEqual(["linux/amd64", "linux/arm64"]);
  }, 600_000);

  test("with builders.allow_emulation off, the depot CLI reports the refusal and the setting that lifts it", async () => {
    const r = await depot(off, projects.off, [
      "--platform",
      "linux/amd64,linux/arm64",
      "--output",
      `type=local,dest=${join(work, "refused")}`,
      ctx,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.log).toContain("platform linux/arm64 is not this host's (linux/amd64) and QEMU emulation is off");
    expect(r.log).toContain("builders.allow_emulation = true");
    const builders = (await (
      await off.get(`/api/v1/projects/${projects.off.id}/builders`, {
        headers: { authorization: `Bearer ${readFileSync(join(off.dataDir, "initial-admin-token"), "utf8").trim()}` },
      })
    ).json()) as { platform: string }[];
    expect(builders.map((b) => b.platform)).not.toContain("linux/arm64");
  }, 600_000);
});
