/**
 * @module builders/currency.test
 * Which builders are on an old image or settings, and how the configured reference is resolved:
 * cached between events, re-inspected on an image event (a burst shares the inspects), and the
 * manager told only when the id really changed.
 */
import { describe, expect, test } from "bun:test";
import { PassThrough } from "node:stream";
import { silentLogger } from "../log/logger.ts";
import {
  builderCurrencyHealthCheck,
  builderSettingsKey,
  describeOutdated,
  imageCurrencyFactory,
  imageDifference,
  type WantedImage,
} from "./currency.ts";

const settings = builderSettingsKey({ runtime: "dockerd", containerdStore: false });
const want: WantedImage = { image: "slipway/builder-dockerd:bookworm", imageId: "sha256:bbbb", settings };

describe("imageDifference", () => {
  test("the same reference, id and settings: current", () => {
    expect(imageDifference({ image: want.image, imageId: "sha256:bbbb", settings }, want)).toBeNull();
  });
  test("the reference now resolves to another id (re-assembled image): the image differs", () => {
    expect(imageDifference({ image: want.image, imageId: "sha256:aaaa", settings }, want)).toEqual({
      image: true,
      settings: false,
    });
  });
  test("another configured reference, even with the same id: the image differs", () => {
    expect(
      imageDifference({ image: "slipway/builder-dockerd:trixie", imageId: "sha256:bbbb", settings }, want),
    ).toEqual({ image: true, settings: false });
  });
  test("changed runtime settings, or a container from before settings were labelled: settings differ", () => {
    const other = builderSettingsKey({ runtime: "dockerd", containerdStore: true });
    expect(imageDifference({ image: want.image, imageId: "sha256:bbbb", settings: other }, want)).toEqual({
      image: false,
      settings: true,
    });
    expect(imageDifference({ image: want.image, imageId: "sha256:bbbb", settings: null }, want)).toEqual({
      image: false,
      settings: true,
    });
  });
  test("a configured image that is not on the engine is nothing to recreate onto", () => {
    expect(
      imageDifference({ image: want.image, imageId: "sha256:aaaa", settings: "x" }, { ...want, imageId: null }),
    ).toBeNull();
  });
});

test("the settings key: order of insecure registries does not matter, each setting does", () => {
  const a = builderSettingsKey({ runtime: "dockerd", insecureRegistries: ["r1:5000", "r2:5000"] });
  expect(builderSettingsKey({ runtime: "dockerd", insecureRegistries: ["r2:5000", "r1:5000"] })).toBe(a);
  expect(builderSettingsKey({ runtime: "dockerd", insecureRegistries: ["r1:5000"] })).not.toBe(a);
  expect(builderSettingsKey({ runtime: "buildkitd", insecureRegistries: ["r1:5000", "r2:5000"] })).not.toBe(a);
  expect(builderSettingsKey({ runtime: "dockerd", containerdStore: true })).not.toBe(
    builderSettingsKey({ runtime: "dockerd" }),
  );
  expect(a).toMatch(/^[0-9a-f]{16}$/);
});

/** A Docker engine whose reference resolves to `id` (null: absent), counting inspects, with an event stream. */
function fakeEngine(id: string | null) {
  const engine = { id, inspects: 0, events: new PassThrough(), eventFilters: "" };
  const docker = {
    getImage: (_ref: string) => ({
      inspect: async () => {
        engine.inspects++;
        await Bun.sleep(5);
        if (!engine.id) throw Object.assign(new Error("no such image"), { statusCode: 404 });
        return { Id: engine.id };
      },
    }),
    getEvents: async (o: { filters: string }) => ((engine.eventFilters = o.filters), engine.events),
  };
  return { engine, docker: docker as never };
}

describe("imageCurrencyFactory", () => {
  test("resolves once, answers from the cache, and tells of a change only when the id changed", async () => {
    const { engine, docker } = fakeEngine("sha256:aaaa");
    const changes: WantedImage[] = [];
    const c = imageCurrencyFactory({
      docker,
      image: want.image,
      settings,
      log: silentLogger,
      onChange: (w) => changes.push(w),
    });
    expect(c.wanted().imageId).toBeNull();
    await c.refresh();
    expect(c.wanted().imageId).toBe("sha256:aaaa");
    for (let i = 0; i < 100; i++) c.wanted(); // warm path: no inspect
    expect(engine.inspects).toBe(1);
    await c.refresh();
    expect(changes).toHaveLength(0); // the first resolution and an unchanged one are no change
    engine.id = "sha256:bbbb";
    await c.refresh();
    expect(changes.map((w) => w.imageId)).toEqual(["sha256:bbbb"]);
    engine.id = null; // removed: nothing to upgrade onto, no call
    await c.refresh();
    expect(changes).toHaveLength(1);
    expect(c.wanted().imageId).toBeNull();
  });

  test("an image event re-resolves; a burst during an inspect costs one more inspect, not one each", async () => {
    const { engine, docker } = fakeEngine("sha256:aaaa");
    const changes: string[] = [];
    const c = imageCurrencyFactory({
      docker,
      image: want.image,
      settings,
      log: silentLogger,
      refreshMs: 3_600_000,
      onChange: (w) => changes.push(w.imageId!),
    });
    await c.refresh();
    await c.watch();
    expect(JSON.parse(engine.eventFilters)).toEqual({
      type: ["image"],
      event: ["tag", "untag", "load", "import", "pull", "delete"],
    });
    engine.id = "sha256:bbbb";
    for (let i = 0; i < 10; i++) engine.events.write(`{"Type":"image","Action":"tag","id":"x${i}"}\n`);
    const deadline = Date.now() + 2000;
    while (changes.length === 0 && Date.now() < deadline) await Bun.sleep(5);
    await c.refresh();
    expect(changes).toEqual(["sha256:bbbb"]);
    expect(engine.inspects).toBeLessThanOrEqual(4); // first + one for the burst + its follow-up + the last refresh
    c.close();
    expect(engine.events.destroyed).toBe(true);
  });

  test("tracks what each builder runs; outdated lists the differing ones with old → new", async () => {
    const { docker } = fakeEngine("sha256:bbbbbbbbbbbbbbbbbbbb");
    const c = imageCurrencyFactory({ docker, image: want.image, settings, log: silentLogger });
    await c.refresh();
    c.track("bldr_old", { image: want.image, imageId: "sha256:aaaaaaaaaaaaaaaaaaaa", settings });
    c.track("bldr_new", { image: want.image, imageId: "sha256:bbbbbbbbbbbbbbbbbbbb", settings });
    c.track("bldr_gone", { image: want.image, imageId: "sha256:aaaaaaaaaaaaaaaaaaaa", settings });
    c.untrack("bldr_gone");
    expect(c.difference("bldr_old")).toEqual({ image: true, settings: false });
    expect(c.difference("bldr_new")).toBeNull();
    expect(c.difference("bldr_never")).toBeNull();
    const rows = ["bldr_old", "bldr_new", "bldr_gone", "bldr_never"].map((id) => ({
      id,
      project_id: `prj_${id}`,
      platform: "linux/amd64",
    }));
    const old = c.outdated(rows);
    expect(old).toEqual([
      {
        builderId: "bldr_old",
        projectId: "prj_bldr_old",
        platform: "linux/amd64",
        from: { image: want.image, imageId: "sha256:aaaaaaaaaaaaaaaaaaaa" },
        to: { image: want.image, imageId: "sha256:bbbbbbbbbbbbbbbbbbbb" },
        settingsChanged: false,
      },
    ]);
    expect(describeOutdated(old[0]!)).toBe(
      `project prj_bldr_old linux/amd64: ${want.image} (aaaaaaaaaaaa) → ${want.image} (bbbbbbbbbbbb)`,
    );

    const check = builderCurrencyHealthCheck({ outdated: () => c.outdated(rows) });
    expect(check.run()).toMatchObject({ status: "warn", observedValue: 1 });
    expect(check.run().output).toContain(`linux/amd64: ${want.image} (aaaaaaaaaaaa) → ${want.image} (bbbbbbbbbbbb)`);
    expect(check.run().output).not.toContain("prj_bldr_old"); // /readyz answers anyone
    c.untrack("bldr_old");
    expect(check.run()).toMatchObject({ status: "pass", observedValue: 0 });
  });
});
