/**
 * @module builders/image/image.test
 * The parts of builder-image assembly that need no root and no Docker: which mirror the host's
 * APT sources name, image references, the recipe hash, what finishRootfs removes and installs,
 * the ListWorkers decoder, and how doctor/readyz word a present, absent or foreign image (the
 * engine replaced by a narrow fake of `inspect`; the real engine is in test/e2e/builder-image).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builderImageHealthCheck, configuredImage, doctorBuilderImageCheck } from "./checks.ts";
import { decodeListWorkers } from "./grpc.ts";
import { defaultMirror, FALLBACK_MIRROR, urisFromDeb822, urisFromList } from "./mirror.ts";
import { DOCKERD_ENTRYPOINT, ENTRYPOINT_SCRIPT, importChanges, recipeHash } from "./recipe.ts";
import { finishRootfs, splitRef, validateMirror, type ImageState } from "./service.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-image-unit-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("default mirror from the host's APT sources", () => {
  test("one-line sources.list: options skipped, security and comments ignored", () => {
    expect(
      urisFromList(
        "# deb http://commented/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.internal/debian bookworm main\ndeb-src http://src/debian bookworm main\n",
      ),
    ).toEqual(["http://mirror.internal/debian"]);
  });

  test("deb822 .sources: Types deb only, disabled stanzas skipped, several URIs", () => {
    const text = [
      "Types: deb deb-src",
      "URIs: http://a.internal/debian http://b.internal/debian",
      "Suites: bookworm",
      "",
      "Types: deb",
      "Enabled: no",
      "URIs: http://disabled/debian",
      "",
      "Types: deb-src",
      "URIs: http://only-src/debian",
    ].join("\n");
    expect(urisFromDeb822(text)).toEqual(["http://a.internal/debian", "http://b.internal/debian"]);
  });

  test("prefers the main archive over security; falls back to deb.debian.org", () => {
    const apt = join(work, "apt1");
    mkdirSync(join(apt, "sources.list.d"), { recursive: true });
    writeFileSync(
      join(apt, "sources.list.d", "a.sources"),
      "Types: deb\nURIs: http://local.mirror/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://local.mirror/debian/\nSuites: bookworm\n",
    );
    expect(defaultMirror(apt)).toBe("http://local.mirror/debian");
    const empty = join(work, "apt2");
    mkdirSync(empty, { recursive: true });
    expect(defaultMirror(empty)).toBe(FALLBACK_MIRROR);
    const onlySecurity = join(work, "apt3");
    mkdirSync(onlySecurity, { recursive: true });
    writeFileSync(
      join(onlySecurity, "sources.list"),
      "deb http://security.debian.org/debian-security bookworm-security main\n",
    );
    expect(defaultMirror(onlySecurity)).toBe(FALLBACK_MIRROR);
  });

  test("a mirror must be an http(s) or file URL", () => {
    expect(validateMirror("http://m/debian/")).toBe("http://m/debian");
    expect(() => validateMirror("ftp://m/debian")).toThrow(/http/);
    expect(() => validateMirror("not a url")).toThrow(/invalid mirror/);
  });
});

describe("image references and the recipe", () => {
  test("splitRef", () => {
    expect(splitRef("slipway/builder-dockerd:bookworm")).toEqual({ repo: "slipway/builder-dockerd", tag: "bookworm" });
    expect(splitRef("registry.internal:5000/team/builder")).toEqual({
      repo: "registry.internal:5000/team/builder",
      tag: "latest",
    });
    for (const bad of ["UPPER/case:x", "a b", "x:", "repo@sha256:abc", "-x"])
      expect(() => splitRef(bad)).toThrow(/invalid image reference/);
  });

  test("the recipe hash is stable per suite and differs between suites", () => {
    expect(recipeHash("bookworm")).toBe(recipeHash("bookworm"));
    expect(recipeHash("bookworm")).not.toBe(recipeHash("trixie"));
    expect(recipeHash("bookworm")).toMatch(/^[0-9a-f]{32}$/);
  });

  test("import changes: entrypoint through tini, labels quoted", () => {
    const c = importChanges({ "io.slipway.runtime": "dockerd", "io.slipway.mirror": "http://m/debian with space" });
    expect(c[0]).toBe(`ENTRYPOINT ["/usr/bin/tini","--","${DOCKERD_ENTRYPOINT}"]`);
    expect(c).toContain('LABEL io.slipway.mirror="http://m/debian with space"');
  });

  test("the entrypoint listens only on the unix socket and remounts cgroups per mount", () => {
    expect(ENTRYPOINT_SCRIPT).toContain('--host="unix://$SOCKET"');
    expect(ENTRYPOINT_SCRIPT).not.toMatch(/tcp:\/\//);
    expect(ENTRYPOINT_SCRIPT).toContain("remount,bind,rw");
    expect(ENTRYPOINT_SCRIPT.startsWith("#!/bin/sh\n")).toBe(true);
  });

  test("dockerd starts beside a containerd of its own, with no stale socket, and one masquerading rule instead of its iptables set-up", () => {
    const staleAt = ENTRYPOINT_SCRIPT.indexOf("rm -rf /run/docker ");
    const containerdAt = ENTRYPOINT_SCRIPT.indexOf("containerd --config");
    const execAt = ENTRYPOINT_SCRIPT.indexOf("exec /usr/sbin/dockerd");
    expect(staleAt).toBeGreaterThan(-1);
    expect(containerdAt).toBeGreaterThan(staleAt);
    expect(execAt).toBeGreaterThan(containerdAt);
    // Nothing on the way from containerd to dockerd waits (no loop, no sleep).
    expect(ENTRYPOINT_SCRIPT.slice(containerdAt, execAt)).not.toMatch(/\bwhile\b|\bsleep\b/);
    expect(ENTRYPOINT_SCRIPT).toContain('--containerd="$CONTAINERD_SOCKET" --iptables=false');
    expect(ENTRYPOINT_SCRIPT).toContain("-A POSTROUTING ! -o docker0 -j MASQUERADE");
    // The state stays where dockerd's own containerd keeps it: on the cache volume.
    expect(ENTRYPOINT_SCRIPT).toContain('root = \\"$DATA_ROOT/containerd/daemon\\"');
  });
});

describe("finishRootfs", () => {
  test("drops caches, docs and the assembling host's identity; installs the entrypoint", () => {
    const root = join(work, "rootfs");
    const files: Record<string, string> = {
      "var/cache/apt/archives/x.deb": "deb",
      "var/lib/apt/lists/deb.debian.org_dists": "list",
      "usr/share/doc/docker.io/copyright": "licence",
      "usr/share/doc/docker.io/changelog.gz": "log",
      "usr/share/man/man1/docker.1.gz": "man",
      "etc/hostname": "assembling-host",
      "etc/resolv.conf": "nameserver 10.0.0.1",
      "etc/hosts": "127.0.0.1 localhost\n10.0.0.5 assembling-host\n",
      "dev/null": "",
      "usr/sbin/dockerd": "binary",
    };
    for (const [p, content] of Object.entries(files)) {
      mkdirSync(join(root, p, ".."), { recursive: true });
      writeFileSync(join(root, p), content);
    }
    mkdirSync(join(root, "var/lib/apt/lists/partial"), { recursive: true });
    finishRootfs(root);
    for (const gone of [
      "var/cache/apt/archives",
      "var/lib/apt/lists/deb.debian.org_dists",
      "usr/share/doc/docker.io/changelog.gz",
      "usr/share/man/man1",
      "etc/hostname",
      "etc/resolv.conf",
      "dev/null",
    ]) {
      expect(existsSync(join(root, gone))).toBe(false);
    }
    expect(readFileSync(join(root, "usr/share/doc/docker.io/copyright"), "utf8")).toBe("licence");
    expect(readFileSync(join(root, "usr/sbin/dockerd"), "utf8")).toBe("binary");
    expect(readFileSync(join(root, "etc/hosts"), "utf8")).not.toContain("assembling-host");
    expect(readFileSync(join(root, "etc/machine-id"), "utf8")).toBe("");
    const ep = join(root, DOCKERD_ENTRYPOINT);
    expect(readFileSync(ep, "utf8")).toBe(ENTRYPOINT_SCRIPT);
    expect(statSync(ep).mode & 0o777).toBe(0o755);
  });
});

describe("ListWorkers decoding", () => {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return out;
  };
  const field = (n: number, bytes: Uint8Array | string) => {
    const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    return new Uint8Array([...varint((n << 3) | 2), ...varint(b.length), ...b]);
  };
  const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

  test("workers with ids, labels and platforms", () => {
    const platform = (os: string, arch: string, variant?: string) =>
      field(3, cat(field(1, arch), field(2, os), ...(variant ? [field(3, variant)] : [])));
    const record = cat(
      field(1, "moby"),
      field(2, cat(field(1, "org.mobyproject.buildkit.worker.executor"), field(2, "oci"))),
      platform("linux", "amd64"),
      platform("linux", "arm", "v7"),
    );
    const msg = cat(field(1, record), field(1, field(1, "second")));
    expect(decodeListWorkers(msg)).toEqual([
      {
        id: "moby",
        labels: { "org.mobyproject.buildkit.worker.executor": "oci" },
        platforms: ["linux/amd64", "linux/arm/v7"],
      },
      { id: "second", labels: {}, platforms: [] },
    ]);
  });

  test("truncated input is an error, not garbage", () => {
    expect(() => decodeListWorkers(new Uint8Array([0x0a, 0x10, 0x01]))).toThrow(/truncated|premature|illegal/);
  });
});

describe("doctor and /readyz wording", () => {
  const fake = (state: Omit<ImageState, "ref"> | Error) => ({
    inspect: async (ref: string): Promise<ImageState> => {
      if (state instanceof Error) throw state;
      return { ref, ...state };
    },
  });
  const dockerd = configuredImage({
    runtime: "dockerd",
    dockerd_image: "slipway/builder-dockerd:bookworm",
    buildkitd_image: "moby/buildkit:x",
  });
  const buildkitd = configuredImage({
    runtime: "buildkitd",
    dockerd_image: "slipway/builder-dockerd:bookworm",
    buildkitd_image: "moby/buildkit:x",
  });

  test("configuredImage picks the runtime's image", () => {
    expect(dockerd).toEqual({ runtime: "dockerd", image: "slipway/builder-dockerd:bookworm" });
    expect(buildkitd).toEqual({ runtime: "buildkitd", image: "moby/buildkit:x" });
  });

  test("present → ok/pass naming runtime, image and digest", async () => {
    const f = await doctorBuilderImageCheck(
      fake({
        present: true,
        id: "sha256:aa",
        digest: "sha256:aa",
        runtime: "dockerd",
        suite: "bookworm",
        recipe: recipeHash("bookworm"),
      }),
      dockerd,
    );
    expect(f).toEqual({
      check: "builder-image",
      status: "ok",
      message: "runtime dockerd, image slipway/builder-dockerd:bookworm, present as sha256:aa (Debian bookworm)",
    });
    const h = await builderImageHealthCheck(
      fake({ present: true, id: "sha256:bb", digest: "moby/buildkit@sha256:cc" }),
      buildkitd,
    ).run();
    expect(h).toMatchObject({ status: "pass", observedValue: true });
    expect(h.output).toContain("moby/buildkit@sha256:cc");
  });

  test("absent → warn with the command that fixes it, per runtime", async () => {
    const f = await doctorBuilderImageCheck(fake({ present: false }), dockerd);
    expect(f.status).toBe("warn");
    expect(f.fix).toContain("slipway builder-image build --tag slipway/builder-dockerd:bookworm");
    const h = await builderImageHealthCheck(fake({ present: false }), buildkitd).run();
    expect(h.status).toBe("warn");
    expect(h.output).toContain("slipway builder-image import FILE.tar");
  });

  test("a dockerd image from an older recipe is a warning that says how to rebuild", async () => {
    const f = await doctorBuilderImageCheck(
      fake({ present: true, id: "sha256:ee", runtime: "dockerd", suite: "trixie", recipe: "0123" }),
      dockerd,
    );
    expect(f.status).toBe("warn");
    expect(f.message).toContain("another Slipway version");
    expect(f.fix).toBe(
      "rebuild it: sudo slipway builder-image build --suite trixie --tag slipway/builder-dockerd:bookworm",
    );
  });

  test("a dockerd image without Slipway's label, and an unreachable engine, are warnings", async () => {
    const foreign = await doctorBuilderImageCheck(fake({ present: true, id: "sha256:dd" }), dockerd);
    expect(foreign.status).toBe("warn");
    expect(foreign.message).toContain("not assembled by slipway builder-image build");
    const down = await builderImageHealthCheck(fake(new Error("connect ENOENT")), dockerd).run();
    expect(down).toMatchObject({ status: "warn", observedValue: false });
    expect(down.output).toContain("connect ENOENT");
  });
});
