import { describe, expect, test } from "bun:test";
import { CreateBuildRequest } from "./depot.ts";
import { decode, DECODE_LIMITS, encode, map, message, ProtoError, ProtoLimitError, Timestamp, toTimestamp, fromTimestamp } from "./proto.ts";

const Inner = message("t.Inner", () => [{ no: 1, name: "text", type: "string" }]);
const Outer = message("t.Outer", () => [
  { no: 1, name: "id", type: "string" },
  { no: 2, name: "tags", type: "string", repeated: true },
  { no: 3, name: "inner", type: Inner },
  { no: 4, name: "items", type: Inner, repeated: true },
  { no: 5, name: "flag", type: "bool" },
  { no: 6, name: "count", type: "int32" },
  { no: 7, name: "big", type: "int64" },
  { no: 8, name: "attrs", type: map() },
  { no: 9, name: "maybe", type: "string", optional: true },
  { no: 10, name: "a", type: Inner, oneof: "pick" },
  { no: 11, name: "b", type: Inner, oneof: "pick" },
  { no: 12, name: "raw", type: "bytes" },
  { no: 13, name: "nums", type: "int32", repeated: true },
]);

describe("proto codec", () => {
  test("round-trips every field kind", () => {
    const msg = { id: "bld_1", tags: ["a", "b"], inner: { text: "x" }, items: [{ text: "1" }, { text: "2" }], flag: true, count: -5, big: 1n << 40n, attrs: { k: "v" }, maybe: "", b: { text: "chosen" }, raw: new Uint8Array([1, 2]), nums: [1, 300] };
    const back = decode(Outer, encode(Outer, msg));
    expect(back).toEqual({ ...msg, a: undefined });
  });

  test("zero values: omitted on the wire, defaulted on read; optional keeps presence", () => {
    expect(encode(Outer, { id: "", flag: false, count: 0 }).length).toBe(0);
    const back = decode(Outer, new Uint8Array(0));
    expect(back.id).toBe("");
    expect(back.maybe).toBeUndefined();
    expect(back.tags).toEqual([]);
    expect(decode(Outer, encode(Outer, { maybe: "" })).maybe).toBe("");
  });

  test("unknown fields are skipped; packed repeated scalars are read", () => {
    // field 99 varint, field 13 packed [1, 2]
    const bytes = new Uint8Array([0x98, 0x06, 0x01, 0x6a, 0x02, 0x01, 0x02]);
    expect(decode(Outer, bytes).nums).toEqual([1, 2]);
  });

  test("garbage is a ProtoError, not a crash", () => {
    expect(() => decode(Outer, new Uint8Array([0x0a, 0x05, 0x41]))).toThrow(ProtoError);
    expect(() => decode(Outer, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow(ProtoError);
    expect(() => decode(Outer, new Uint8Array([0x0a, 0x02, 0xc3, 0x28]))).toThrow(ProtoError);
  });

  test("timestamps", () => {
    const d = new Date("2026-11-22T10:00:00.123Z");
    expect(fromTimestamp(decode(Timestamp, encode(Timestamp, toTimestamp(d))))!.toISOString()).toBe(d.toISOString());
  });
});

describe("decoding limits (a small hostile body never becomes a huge object graph)", () => {
  const Node = message("t.Node", () => [{ no: 1, name: "child", type: Node }]);
  const nested = (levels: number): Uint8Array => {
    let b = new Uint8Array(0);
    for (let i = 0; i < levels; i++) b = new Uint8Array([0x0a, b.length, ...b]); // lengths stay < 128 for the depths used
    return b;
  };

  test("nesting: the limit decodes, one more level is refused naming the path", () => {
    expect(() => decode(Node, nested(DECODE_LIMITS.depth))).not.toThrow();
    const refused = (() => {
      try {
        decode(Node, nested(DECODE_LIMITS.depth + 1));
      } catch (e) {
        return e;
      }
    })();
    expect(refused).toBeInstanceOf(ProtoLimitError);
    expect((refused as Error).message).toContain(`t.Node${".child".repeat(DECODE_LIMITS.depth + 1)}: messages nested more than ${DECODE_LIMITS.depth} deep`);
  });

  test("a repeated field: the limit decodes, one more element is refused naming the field", () => {
    const items = (n: number) => new Uint8Array(n * 2).map((_, i) => (i % 2 ? 0x00 : 0x22)); // field 4 (items), empty Inner
    expect((decode(Outer, items(DECODE_LIMITS.repeated)).items as unknown[]).length).toBe(DECODE_LIMITS.repeated);
    expect(() => decode(Outer, items(DECODE_LIMITS.repeated + 1))).toThrow(new ProtoLimitError(`t.Outer.items: more than ${DECODE_LIMITS.repeated} elements`));
  });

  test("repeated scalars, packed or not, and map entries are counted too", () => {
    const n = DECODE_LIMITS.repeated + 1;
    const packed = new Uint8Array([0x6a, 0x80 | (n & 0x7f), 0x80 | ((n >> 7) & 0x7f), n >> 14, ...new Uint8Array(n).fill(0x01)]); // field 13, n ones
    expect(() => decode(Outer, packed)).toThrow("t.Outer.nums: more than");
    const tags = new Uint8Array((DECODE_LIMITS.repeated + 1) * 2).map((_, i) => (i % 2 ? 0x00 : 0x12)); // field 2, empty strings
    expect(() => decode(Outer, tags)).toThrow("t.Outer.tags: more than");
    const entries = new Uint8Array((DECODE_LIMITS.repeated + 1) * 2).map((_, i) => (i % 2 ? 0x00 : 0x42)); // field 8, empty entries
    expect(() => decode(Outer, entries)).toThrow("t.Outer.attrs: more than");
  });

  test("all fields together: more elements than the per-decode budget are refused, even spread over many messages", () => {
    const Wide = message("t.Wide", () => [{ no: 1, name: "outers", type: Outer, repeated: true }]);
    const perOuter = 40_000; // under the per-field limit
    const outer = new Uint8Array(perOuter * 2).map((_, i) => (i % 2 ? 0x00 : 0x22));
    const header = new Uint8Array([0x0a, 0x80 | (outer.length & 0x7f), 0x80 | ((outer.length >> 7) & 0x7f), outer.length >> 14]);
    const one = new Uint8Array([...header, ...outer]);
    const copies = Math.ceil(DECODE_LIMITS.elements / perOuter) + 1;
    const body = new Uint8Array(one.length * copies);
    for (let i = 0; i < copies; i++) body.set(one, i * one.length);
    expect(() => decode(Wide, body)).toThrow(`more than ${DECODE_LIMITS.elements} elements in all`);
  });

  test("the `12 00` bomb (16 MiB of empty CreateBuild options) is refused at once, allocating little", () => {
    const bomb = new Uint8Array(16 * 1024 * 1024).map((_, i) => (i % 2 ? 0x00 : 0x12));
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    const started = performance.now();
    expect(() => decode(CreateBuildRequest, bomb)).toThrow(new ProtoLimitError(`depot.cli.v1.CreateBuildRequest.options: more than ${DECODE_LIMITS.repeated} elements`));
    const ms = performance.now() - started;
    const grown = process.memoryUsage().rss - before;
    console.log(`12 00 bomb: refused in ${ms.toFixed(0)} ms, RSS +${(grown / 1e6).toFixed(1)} MB`);
    // The limit's message above says it stopped counting; memory is what a bomb would cost.
    expect(grown).toBeLessThan(200e6);
  });
});
