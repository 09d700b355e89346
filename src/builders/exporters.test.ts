/** @module builders/exporters.test */
import { describe, expect, test } from "bun:test";
import { exporterCheckFactory, exporterRefusal, exportersNeeded } from "./exporters.ts";

const opt = (o: Partial<{ outputs: { kind: string }[]; push: boolean; load: boolean; save: boolean }>) => ({
  outputs: [],
  push: false,
  load: false,
  ...o,
});

describe("exportersNeeded", () => {
  test("outputs by kind, registry as image, push and save as image, load as image and docker", () => {
    expect([...exportersNeeded([opt({ outputs: [{ kind: "local" }] })])]).toEqual(["local"]);
    expect([...exportersNeeded([opt({ outputs: [{ kind: "registry" }] })])]).toEqual(["image"]);
    expect([...exportersNeeded([opt({ push: true })])]).toEqual(["image"]);
    expect([...exportersNeeded([opt({ save: true })])]).toEqual(["image"]);
    expect([...exportersNeeded([opt({ load: true })])].sort()).toEqual(["docker", "image"]);
    // bake: every target counts
    expect(
      [...exportersNeeded([opt({ outputs: [{ kind: "tar" }] }), opt({ outputs: [{ kind: "oci" }] })])].sort(),
    ).toEqual(["oci", "tar"]);
  });
});

describe("exporterRefusal", () => {
  const trixie = { runtime: "dockerd" as const, containerdStore: true, suite: "trixie" };
  test("trixie with containerd's store and buildkitd have every exporter", () => {
    for (const k of ["image", "docker", "oci", "local", "tar"]) {
      expect(exporterRefusal(trixie, new Set([k]))).toBeNull();
      expect(exporterRefusal({ runtime: "buildkitd", containerdStore: false, suite: null }, new Set([k]))).toBeNull();
    }
  });
  test("bookworm refuses image, docker and oci, naming the settings that fix it; local and tar pass", () => {
    const bookworm = { ...trixie, suite: "bookworm" };
    expect(exporterRefusal(bookworm, new Set(["local", "tar"]))).toBeNull();
    const why = exporterRefusal(bookworm, new Set(["docker", "image"]))!;
    expect(why).toContain('"docker", "image" exporters are not available');
    expect(why).toContain("builders.dockerd_image");
    expect(why).toContain("builder-image build --suite trixie");
    expect(exporterRefusal(bookworm, new Set(["oci"]))).toContain('"oci" exporter is not available');
  });
  test("without containerd's store: names builders.dockerd_containerd_store", () => {
    expect(exporterRefusal({ ...trixie, containerdStore: false }, new Set(["image"]))).toContain(
      "builders.dockerd_containerd_store = true",
    );
  });
  test("an image of unknown suite (imported) is not refused: BuildKit says what it lacks", () => {
    expect(exporterRefusal({ ...trixie, suite: null }, new Set(["image"]))).toBeNull();
  });
});

describe("exporterCheckFactory", () => {
  test("reads the suite at refresh, answers synchronously, re-reads in the background after refreshMs", async () => {
    let suite = "bookworm";
    let reads = 0;
    let t = 0;
    const check = exporterCheckFactory({
      runtime: "dockerd",
      containerdStore: true,
      suiteOf: async () => (reads++, suite),
      refreshMs: 1000,
      now: () => t,
    });
    await check.refresh();
    expect(reads).toBe(1);
    expect(check.refusal([opt({ load: true })])).toContain("bookworm");
    expect(check.canPush()).toBe(false);
    t = 500;
    expect(check.refusal([opt({ load: true })])).not.toBeNull();
    expect(reads).toBe(1); // fresh enough: no read
    suite = "trixie";
    t = 2000;
    expect(check.refusal([opt({ load: true })])).not.toBeNull(); // stale answer while it re-reads
    await Bun.sleep(0);
    expect(reads).toBe(2);
    expect(check.refusal([opt({ load: true })])).toBeNull();
    expect(check.canPush()).toBe(true);
  });
  test("an engine that cannot be asked keeps what was known", async () => {
    let fail = false;
    const check = exporterCheckFactory({
      runtime: "dockerd",
      containerdStore: true,
      suiteOf: async () => {
        if (fail) throw new Error("no engine");
        return "bookworm";
      },
      refreshMs: 0,
    });
    await check.refresh();
    fail = true;
    await check.refresh();
    expect(check.refusal([opt({ push: true })])).toContain("bookworm");
  });
});
