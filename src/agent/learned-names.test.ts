/**
 * @module agent/learned-names.test
 * What the pinning responder may learn under a wildcard: host names only, a capped number, each
 * forgotten once nobody asked for it within the idle time.
 */
import { expect, test } from "bun:test";
import { isHostName, learnedNamesFactory } from "./learned-names.ts";

test("only RFC 1123 host names, exactly as written, can be learned", () => {
  for (const ok of ["a.wild.test", "x-1.b2.wild.test", `${"a".repeat(63)}.wild.test`])
    expect(isHostName(ok)).toBe(true);
  for (const bad of [
    "x\n10.0.0.1 victim.test\n#.wild.test",
    "a b.wild.test",
    "a\tb.wild.test",
    "_acme.wild.test",
    "-a.wild.test",
    "a-.wild.test",
    "A.wild.test",
    "a.wild.test.",
    " a.wild.test",
    "a..wild.test",
    "a#b.wild.test",
    `${"a".repeat(64)}.wild.test`,
    `${"a.".repeat(127)}test`,
    "",
  ])
    expect(isHostName(bad)).toBe(false);
});

test("at most `max` names; an idle one is forgotten and frees its place; asking again keeps a name", () => {
  let t = 0;
  const names = learnedNamesFactory({ max: 2, idleMs: 1000, now: () => t });
  expect(names.add("x\ny.wild.test")).toBe("invalid");
  expect(names.add("a.wild.test")).toBe("learned");
  expect(names.add("b.wild.test")).toBe("learned");
  expect(names.add("c.wild.test")).toBe("full");
  expect(names.add("a.wild.test")).toBe("known");
  t = 800;
  names.touch("a.wild.test");
  t = 1500;
  expect(names.prune(() => true)).toBe(true); // b: idle since 0
  expect(names.names()).toEqual(["a.wild.test"]);
  expect(names.add("c.wild.test")).toBe("learned");
  expect(names.prune((n) => n !== "c.wild.test")).toBe(true); // no wildcard covers it any more
  expect(names.names()).toEqual(["a.wild.test"]);
  expect(names.prune(() => true)).toBe(false);
});
