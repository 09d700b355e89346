/**
 * @module test/support/warm-caches
 * `bun test/support/warm-caches.ts builder-image SUITE | system-image`: makes one of the images the
 * suites build on first use (the dockerd builder images, the system test's Debian image and its
 * local package archive), so that `.ci/run` can make them side by side before the tests on a fresh
 * machine: each is mostly waiting on the Debian mirror. What exists already is reused as is.
 */
import { ensureDockerdBuilderImage } from "./builder-image.ts";
import { ensureSystemImage } from "../system/rootfs.ts";

const [what, suite] = Bun.argv.slice(2);
const t0 = performance.now();
const took = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
if (what === "builder-image" && (suite === "trixie" || suite === "bookworm")) {
  const image = await ensureDockerdBuilderImage({ suite });
  console.log(`builder image ${image.ref}: ${image.source}, ${took()}`);
} else if (what === "system-image") {
  const sys = ensureSystemImage((line) => console.log(`  ${line}`));
  console.log(`system image: ${sys.source}, ${took()}`);
} else {
  console.error("usage: bun test/support/warm-caches.ts builder-image trixie|bookworm | system-image");
  process.exit(2);
}
