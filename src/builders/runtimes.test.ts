import { describe, expect, test } from "bun:test";
import { parse as parseToml } from "smol-toml";
import { RUNTIMES, keepBytes, normalizePlatform, qemuBinfmtName } from "./runtimes.ts";

const policy = { cacheSizeBytes: 50 * 1024 ** 3, keepDays: 14, maxParallelism: 4 };

describe("runtime configuration", () => {
  test("buildkitd.toml carries the project's cache size and keep-days as GC policy", () => {
    const toml = parseToml(RUNTIMES.buildkitd.config(policy)) as any;
    expect(toml.worker.oci.gc).toBe(true);
    expect(toml.worker.oci.gckeepstorage).toBe(keepBytes(policy));
    expect(toml.worker.oci["max-parallelism"]).toBe(4);
    expect(toml.worker.oci.gcpolicy[0]).toEqual({ keepDuration: "336h", keepBytes: keepBytes(policy) });
    expect(toml.worker.oci.gcpolicy[1].all).toBe(true);
    expect(toml.grpc.address).toEqual(["unix:///run/slipway/buildkitd.sock"]);
  });

  test("dockerd's daemon.json (passed to the image's entrypoint) collects the cache by age, then size", () => {
    const c = RUNTIMES.dockerd.container({ ...policy, keepDays: 2 });
    expect(c.cmd).toEqual([]);
    const json = JSON.parse(c.env[0]!.replace(/^SLIPWAY_DOCKERD_CONFIG_JSON=/, ""));
    // The image's entrypoint sets -H and --data-root; repeating them in daemon.json makes dockerd refuse to start.
    expect(json.hosts).toBeUndefined();
    expect(json["data-root"]).toBeUndefined();
    expect(json.builder.gc.policy[0].filter).toEqual(["unused-for=48h"]);
    expect(json.builder.gc.policy[1].all).toBe(true);
    expect(keepBytes(policy)).toBeLessThan(policy.cacheSizeBytes);
  });

  test("insecure registries: dockerd takes hosts and CIDRs, buildkitd hosts", () => {
    const p = { ...policy, insecureRegistries: ["registry.internal:5000", "172.16.0.0/12"] };
    const json = JSON.parse(RUNTIMES.dockerd.container(p).env[0]!.replace(/^SLIPWAY_DOCKERD_CONFIG_JSON=/, ""));
    expect(json["insecure-registries"]).toEqual(["registry.internal:5000", "172.16.0.0/12"]);
    const toml = parseToml(RUNTIMES.buildkitd.config(p)) as any;
    expect(toml.registry["registry.internal:5000"]).toEqual({ http: true, insecure: true });
    expect(Object.keys(toml.registry)).toEqual(["registry.internal:5000"]);
    expect(JSON.parse(RUNTIMES.dockerd.config(policy))["insecure-registries"]).toBeUndefined();
  });

  test("platforms", () => {
    expect(normalizePlatform("amd64")).toBe("linux/amd64");
    expect(normalizePlatform("linux/arm64/v8")).toBe("linux/arm64");
    expect(normalizePlatform("linux/arm/v7")).toBe("linux/arm/v7");
    expect(normalizePlatform("windows/amd64")).toBeNull();
    expect(normalizePlatform("linux/../../etc")).toBeNull();
    expect(normalizePlatform("linux/sparc")).toBeNull();
    expect(qemuBinfmtName("linux/arm64")).toBe("qemu-aarch64");
  });
});
