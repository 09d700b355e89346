import { describe, expect, test } from "bun:test";
import { StatusResponse } from "../wire/buildkit.ts";
import { encode } from "../wire/proto.ts";
import { statusObserver } from "./status-tap.ts";

describe("the build endpoint's BuildKit status observer", () => {
  test("a message beyond the decoder's limits is logged and skipped; the next one is observed", () => {
    const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
    const observed: unknown[] = [];
    const observe = statusObserver("bld_1", { builds: () => ({ observed: (_id, batch) => void observed.push(batch) }), log: { warn: (msg: string, fields?: Record<string, unknown>) => void warnings.push({ msg, fields: fields ?? {} }) } });
    const bomb = new Uint8Array(16 * 1024 * 1024).map((_, i) => (i % 2 ? 0x00 : 0x0a)); // 8 Mi empty vertexes
    expect(() => observe("/moby.buildkit.v1.Control/Status", bomb)).not.toThrow();
    expect(observed).toEqual([]);
    expect(warnings).toEqual([{ msg: "BuildKit status message skipped", fields: { build: "bld_1", bytes: bomb.length, error: "moby.buildkit.v1.StatusResponse.vertexes: more than 50000 elements" } }]);
    observe("/moby.buildkit.v1.Control/Status", encode(StatusResponse, { logs: [{ vertex: "sha256:x", msg: new TextEncoder().encode("hello\n"), stream: 1 }] }));
    expect(observed.length).toBe(1);
  });
});
