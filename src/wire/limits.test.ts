/**
 * @module wire/limits.test
 * The decoding limit: a body of empty nested messages is refused before it is decoded, at any
 * depth, plain or gzip'd through the Connect layer's compression; a real message passes.
 */
import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { compressionGzip } from "../api/connect/protocol.ts";
import { StatusResponseSchema } from "./buildkit.ts";
import { METHODS } from "./depot.ts";
import { checkDecodeLimits, DecodeLimitError } from "./limits.ts";

const bomb = (bytes: number, tag: number) => new Uint8Array(bytes).map((_, i) => (i % 2 ? 0x00 : tag));

describe("the decoding limit", () => {
  test("refuses 200,001 empty messages, at the top or nested; passes 199,999 and a real status message", () => {
    expect(() => checkDecodeLimits(METHODS.createBuild.input, bomb(400_002, 0x12))).toThrow(DecodeLimitError);
    expect(() => checkDecodeLimits(METHODS.createBuild.input, bomb(399_998, 0x12))).not.toThrow();
    // One status message (field 2 of ReportStatusRequest) wrapping 250k empty vertexes.
    const inner = bomb(500_000, 0x0a);
    const nested = new Uint8Array([0x12, 0xa0, 0xc2, 0x1e, ...inner]); // length 500000 as a varint
    expect(() => checkDecodeLimits(METHODS.reportStatus.input, nested)).toThrow(/ReportStatusRequest|StatusResponse/);
    const real = toBinary(
      StatusResponseSchema,
      create(StatusResponseSchema, {
        logs: Array.from({ length: 2000 }, () => ({ vertex: "sha256:x".padEnd(71, "0"), msg: new Uint8Array(200) })),
      }),
    );
    expect(real.length).toBeGreaterThan(400_000);
    expect(() => checkDecodeLimits(StatusResponseSchema, real)).not.toThrow();
  });

  test("a gzip'd body is held to it once inflated, as resource_exhausted", async () => {
    const gz = new Uint8Array(Bun.gzipSync(bomb(1024 * 1024, 0x12)));
    expect(gz.length).toBeLessThan(8 * 1024);
    const e = await compressionGzip(METHODS.createBuild.input)
      .decompress(gz, 2 * 1024 * 1024)
      .catch((x: unknown) => x);
    expect(String(e)).toContain("resource_exhausted");
    expect(String(e)).toContain("holds more than 200000 fields");
    // Without a message type (the JSON codec's text), only the size limit applies.
    expect((await compressionGzip(null).decompress(gz, 2 * 1024 * 1024)).length).toBe(1024 * 1024);
  });
});
