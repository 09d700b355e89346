import { describe, expect, test } from "bun:test";
import { decode, encode, map, message, ProtoError, Timestamp, toTimestamp, fromTimestamp } from "./proto.ts";

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
