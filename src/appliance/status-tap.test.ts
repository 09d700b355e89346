import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { StatusResponseSchema } from "../wire/buildkit.ts";
import { statusObserver } from "./status-tap.ts";

describe("the build endpoint's BuildKit status observer", () => {
  test("a message beyond the decoder's limits is logged and skipped; the next one is observed", () => {
    const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
    const observed: unknown[] = [];
    const observe = statusObserver("bld_1", {
      builds: () => ({ observed: (_id, batch) => void observed.push(batch) }),
      log: {
        warn: (msg: string, fields?: Record<string, unknown>) => void warnings.push({ msg, fields: fields ?? {} }),
      },
    });
    const bomb = new Uint8Array(16 * 1024 * 1024).map((_, i) => (i % 2 ? 0x00 : 0x0a)); // 8 Mi empty vertexes
    expect(() => observe("/moby.buildkit.v1.Control/Status", bomb)).not.toThrow();
    expect(observed).toEqual([]);
    expect(warnings).toEqual([
      {
        msg: "BuildKit status message skipped",
        fields: {
          build: "bld_1",
          bytes: bomb.length,
          error: "request too large: moby.buildkit.v1.StatusResponse holds more than 200000 fields",
        },
      },
    ]);
    observe(
      "/moby.buildkit.v1.Control/Status",
      toBinary(
        StatusResponseSchema,
        create(StatusResponseSchema, {
          logs: [{ vertex: "sha256:x", msg: new TextEncoder().encode("hello\n"), stream: 1n }],
        }),
      ),
    );
    expect(observed.length).toBe(1);
  });
});
