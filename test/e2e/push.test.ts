/**
 * @module test/e2e/push.test
 * `--push` end to end: the depot CLI builds on a `dockerd` runtime builder made from Debian trixie
 * (dockerd 26 with the containerd image store, which BuildKit's `image` exporter needs; bookworm's
 * dockerd 20.10 has no such exporter) and pushes to a real registry (Debian's docker-registry)
 * that it reaches over plain HTTP on the builder network's gateway; the test then pulls the
 * manifest and every blob it names back from the registry.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Docker from "dockerode";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { which } from "../../src/host/run.ts";
import { slipwayBinary } from "../support/binary.ts";
import { DEPOT, depotEnv, finished } from "../support/depot.ts";
import { builderImageMissing, ensureDockerdBuilderImage, writeBusyboxContext } from "../support/builder-image.ts";
import { removeBuildersOf, removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { pushingServeArgs, startPlainRegistry, type PlainRegistry } from "../support/plain-registry.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const missing = !existsSync(DEPOT)
  ? `the depot CLI is not installed (${DEPOT})`
  : !which("docker-registry")
    ? "docker-registry is not installed (apt-get install docker-registry)"
    : await builderImageMissing("trixie");

integrationSuite("--push to a registry through the depot CLI", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-push-"));
  const docker = new Docker({ socketPath: "/var/run/docker.sock" });
  let s: Served;
  let registry: PlainRegistry | null = null;
  let regPort = 0;
  let project = "";
  let token = "";

  const depot = (args: string[]) => {
    const p = Bun.spawn([DEPOT, "build", "--project", project, "--progress", "plain", ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: depotEnv(s, work, token),
    });
    return finished(p);
  };

  beforeAll(async () => {
    const image = await ensureDockerdBuilderImage({ suite: "trixie" });
    registry = await startPlainRegistry(work);
    regPort = registry.port;
    s = await serve(slipwayBinary(), join(work, "data"), pushingServeArgs(image.ref), {}, { publicHost: "localhost" });
    const admin = readFileSync(join(work, "data", "initial-admin-token"), "utf8").trim();
    const post = async (path: string, body: unknown) =>
      (
        await s.get(path, {
          method: "POST",
          headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        })
      ).json() as Promise<Record<string, string>>;
    project = (await post("/api/v1/orgs/default/projects", { name: "pushes" })).id!;
    token = (await post("/api/v1/tokens", { kind: "project", name: "ci", project })).token!;
  }, 20 * 60_000);

  afterAll(async () => {
    await s?.stop();
    registry?.stop();
    await removeBuildersOf([project], docker);
    await removeBuildersOfServed(); // and any builder whose project id this file never learned
    rmSync(work, { recursive: true, force: true });
  });

  test("the image is pushed and can be pulled back: manifest, config and layers", async () => {
    const ctx = join(work, "ctx");
    writeBusyboxContext(ctx, "RUN echo pushed-by-slipway > /proof.txt");
    const warm = await depot([ctx]); // starts the builder: its network's gateway is the registry's address
    expect(warm.code, warm.log).toBe(0);
    const c = (
      (await docker.listContainers({ filters: JSON.stringify({ label: [`io.slipway.project=${project}`] }) })) as {
        NetworkSettings: { Networks: Record<string, { NetworkID: string }> };
      }[]
    )[0]!;
    const net = (await docker.getNetwork(Object.values(c.NetworkSettings.Networks)[0]!.NetworkID).inspect()) as {
      IPAM: { Config: { Gateway: string }[] };
    };
    const ref = `${net.IPAM.Config[0]!.Gateway}:${regPort}/slipway/proof:1`;
    const pushed = await depot(["-t", ref, "--push", ctx]);
    expect(pushed.code, pushed.log).toBe(0);
    expect(pushed.log).toContain("pushing manifest");

    const accept =
      "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json";
    const base = `http://127.0.0.1:${regPort}/v2/slipway/proof`;
    let manifest = (await (await fetch(`${base}/manifests/1`, { headers: { accept } })).json()) as {
      manifests?: { digest: string; platform?: { architecture: string } }[];
      config?: { digest: string };
      layers?: { digest: string }[];
    };
    if (manifest.manifests) {
      const entry = manifest.manifests.find((m) => m.platform?.architecture === "amd64") ?? manifest.manifests[0]!;
      manifest = (await (
        await fetch(`${base}/manifests/${entry.digest}`, { headers: { accept } })
      ).json()) as typeof manifest;
    }
    expect(manifest.layers!.length).toBeGreaterThan(0);
    for (const d of [manifest.config!.digest, ...manifest.layers!.map((l) => l.digest)]) {
      const blob = await fetch(`${base}/blobs/${d}`);
      expect(blob.status).toBe(200);
      const bytes = new Uint8Array(await blob.arrayBuffer());
      expect(`sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`).toBe(d);
    }
  }, 600_000);
});
