import { describe, expect, test } from "bun:test";
import { BuilderPlatform, CreateBuildRequest, GetBuildKitConnectionRequest, GetBuildKitConnectionResponse, ReportBuildHealthResponse } from "./depot.ts";
import { fromJson, registerEnum, toJson } from "./json.ts";
import { decode, DECODE_LIMITS, encode, message, ProtoError, ProtoLimitError } from "./proto.ts";

registerEnum("BUILDER_PLATFORM_", BuilderPlatform);

describe("Connect JSON codec", () => {
  test("camelCase and snake_case in, camelCase out; enums by name or number", () => {
    const a = fromJson(GetBuildKitConnectionRequest, { build_id: "bld_1", platform: "BUILDER_PLATFORM_ARM64" });
    const b = fromJson(GetBuildKitConnectionRequest, { buildId: "bld_1", platform: 2 });
    expect(a).toEqual(b);
    expect(toJson(GetBuildKitConnectionRequest, a)).toEqual({ buildId: "bld_1", platform: 2 });
  });

  test("nested messages, oneofs and timestamps match the proto codec", () => {
    const resp = { active: { endpoint: "tcp://h:8444", serverName: "h", cert: { cert: "C", key: "K" }, caCert: { cert: "CA", key: "" }, identity: {} } };
    const json = toJson(GetBuildKitConnectionResponse, resp);
    expect(json).toEqual({ active: { endpoint: "tcp://h:8444", serverName: "h", cert: { cert: "C", key: "K" }, caCert: { cert: "CA" }, identity: {} } });
    expect(decode(GetBuildKitConnectionResponse, encode(GetBuildKitConnectionResponse, fromJson(GetBuildKitConnectionResponse, json)))).toEqual(
      decode(GetBuildKitConnectionResponse, encode(GetBuildKitConnectionResponse, resp)),
    );
    const h = toJson(ReportBuildHealthResponse, { cancelsAt: { seconds: 1795000000n, nanos: 0 } });
    expect(h).toEqual({ cancelsAt: new Date(1795000000 * 1000).toISOString() });
    expect(fromJson(ReportBuildHealthResponse, h)).toEqual({ cancelsAt: { seconds: 1795000000n, nanos: 0 } });
  });

  test("bad input names the field", () => {
    expect(() => fromJson(CreateBuildRequest, { projectId: 5 })).toThrow(new ProtoError("/projectId: expected a string"));
    expect(() => fromJson(CreateBuildRequest, { nope: 1 })).toThrow(ProtoError);
    expect(() => fromJson(CreateBuildRequest, [])).toThrow(ProtoError);
    expect(() => fromJson(GetBuildKitConnectionRequest, { platform: "SPARC" })).toThrow(ProtoError);
  });
});

describe("decoding limits, as the proto codec's", () => {
  const Node = message("t.Node", () => [{ no: 1, name: "child", type: Node }, { no: 2, name: "names", type: "string", repeated: true }]);
  test("nesting deeper than the limit is refused naming the path", () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i <= DECODE_LIMITS.depth; i++) deep = { child: deep };
    expect(() => fromJson(Node, deep)).toThrow(new ProtoLimitError(`${"/child".repeat(DECODE_LIMITS.depth + 1)}: messages nested more than ${DECODE_LIMITS.depth} deep`));
    expect(() => fromJson(Node, (deep as { child: Record<string, unknown> }).child)).not.toThrow();
  });
  test("a repeated field longer than the limit is refused naming the field", () => {
    expect(() => fromJson(Node, { names: new Array(DECODE_LIMITS.repeated + 1).fill("") })).toThrow(new ProtoLimitError(`/names: more than ${DECODE_LIMITS.repeated} elements`));
    expect((fromJson(Node, { names: new Array(DECODE_LIMITS.repeated).fill("") }).names as string[]).length).toBe(DECODE_LIMITS.repeated);
  });
});
