/**
 * @module cli/client/build-session.test
 * The client side of `slipway build`: the argv each BuildKit client gets for every flag the
 * README lists (the e2e tests run them for real), how the build endpoint's name is verified,
 * which project references are accepted, and when a person is told the builder is starting
 * (against a loopback stand-in for the build API that holds the connection ask like the server).
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../errors.ts";
import { apiClientFactory } from "../../api-client/index.ts";
import {
  buildCommands,
  endpointIdentity,
  openSession,
  resolveProject,
  WAIT_NOTE_AFTER_MS,
  type BuildArgs,
} from "./build-session.ts";

const session = {
  buildId: "bld_1",
  dir: "/run/x",
  connections: [
    {
      platform: "linux/amd64",
      endpoint: "tcp://10.0.0.1:8444",
      serverName: "10.0.0.1",
      dir: "/run/x",
      ca: "/run/x/ca.pem",
      cert: "/run/x/cert.pem",
      key: "/run/x/key.pem",
    },
  ],
};
const args = (over: Partial<BuildArgs> = {}): BuildArgs => ({
  context: "ctx",
  platforms: ["linux/amd64"],
  tags: [],
  buildArgs: [],
  push: false,
  load: false,
  outputs: [],
  noCache: false,
  progress: "plain",
  ...over,
});

describe("buildCommands", () => {
  test("buildx: every flag is passed on, --load included", () => {
    const c = buildCommands(
      { kind: "buildx", path: "/bin/docker-buildx" },
      session,
      args({
        tags: ["app:1"],
        file: "ctx/Other.Dockerfile",
        buildArgs: ["A=1"],
        target: "final",
        push: true,
        load: true,
        outputs: ["type=local,dest=out"],
        noCache: true,
      }),
    );
    expect(c.setup[0]!.join(" ")).toContain("servername=10.0.0.1"); // Go verifies an IP name against IP SANs
    expect(c.build).toEqual([
      "/bin/docker-buildx",
      "build",
      "--builder",
      "slipway-bld_1",
      "--progress",
      "plain",
      "--platform",
      "linux/amd64",
      "-t",
      "app:1",
      "-f",
      "ctx/Other.Dockerfile",
      "--build-arg",
      "A=1",
      "--target",
      "final",
      "--push",
      "--load",
      "--output",
      "type=local,dest=out",
      "--no-cache",
      "ctx",
    ]);
    expect(c.loadInto).toBeUndefined();
  });

  test("buildctl: --load is a docker tarball on stdout piped into docker load", () => {
    const c = buildCommands(
      { kind: "buildctl", path: "/bin/buildctl" },
      session,
      args({ tags: ["app:1"], load: true }),
    );
    expect(c.build).toContain("type=docker,name=app:1");
    expect(c.build.filter((x) => x.startsWith("type=image"))).toEqual([]);
    expect(c.loadInto).toEqual(["docker", "load"]);
    expect(() =>
      buildCommands(
        { kind: "buildctl", path: "/bin/buildctl" },
        session,
        args({ load: true, outputs: ["type=local,dest=o"] }),
      ),
    ).toThrow(UsageError);
    const plain = buildCommands(
      { kind: "buildctl", path: "/bin/buildctl" },
      session,
      args({ tags: ["app:1"], file: "sub/Dockerfile.x", buildArgs: ["A=1"], target: "t", noCache: true }),
    );
    expect(plain.build).toEqual(
      expect.arrayContaining([
        "--tlsservername",
        "10.0.0.1",
        "filename=Dockerfile.x",
        "build-arg:A=1",
        "target=t",
        "--no-cache",
        "type=image,name=app:1",
      ]),
    );
    expect(plain.loadInto).toBeUndefined();
  });
});

describe("endpointIdentity", () => {
  test("a DNS name is sent as SNI; an IP address is checked against the certificate's IP SANs, never sent as SNI", () => {
    expect(endpointIdentity("build.example.com")).toEqual({ servername: "build.example.com" });
    const ip = endpointIdentity("127.0.0.1");
    expect(ip.servername).toBeUndefined();
    const cert = { subject: { CN: "x" }, subjectaltname: "DNS:localhost, IP Address:127.0.0.1" } as never;
    expect(ip.checkServerIdentity!("ignored", cert)).toBeUndefined();
    expect(endpointIdentity("10.9.9.9").checkServerIdentity!("10.9.9.9", cert)).toBeInstanceOf(Error);
  });
});

describe("resolveProject", () => {
  test("an id or ORG/NAME from the flag, SLIPWAY_PROJECT or slipway.json; anything else is a usage error", () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-project-"));
    try {
      expect(resolveProject("acme/web", {}, dir)).toBe("acme/web");
      expect(resolveProject(undefined, { SLIPWAY_PROJECT: "acme/web" }, dir)).toBe("acme/web");
      writeFileSync(join(dir, "slipway.json"), JSON.stringify({ id: "acme/web" }));
      expect(resolveProject(undefined, {}, dir)).toBe("acme/web");
      expect(resolveProject("prj_x", {}, dir)).toBe("prj_x");
      for (const bad of ["acme/", "/web", "a/b/c"]) expect(() => resolveProject(bad, {}, dir)).toThrow(UsageError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("openSession: the starting note", () => {
  /**
   * A stand-in for the build API: GetBuildKitConnection answers `pending` (wait_ms 20) until
   * `readyAfterMs` from the first ask, holding each ask up to `holdMs` as the server does.
   */
  async function session(readyAfterMs: number, holdMs: number) {
    let firstAsk = 0;
    let asks = 0;
    const active = {
      endpoint: "tcp://127.0.0.1:1",
      serverName: "127.0.0.1",
      cert: { cert: "C", key: "K" },
      caCert: { cert: "CA" },
    };
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const method = new URL(req.url).pathname.split("/").pop();
        if (method === "CreateBuild") return Response.json({ buildId: "bld_1", buildToken: "t", buildUrl: "u" });
        if (method !== "GetBuildKitConnection") return Response.json({});
        asks++;
        firstAsk ||= Date.now();
        const left = readyAfterMs - (Date.now() - firstAsk);
        // Ready once a hold covers what is left: decided from the plan, not by reading the clock
        // again after the sleep (a timer may end a millisecond before Date.now() says it should).
        if (left > 0) await Bun.sleep(Math.min(left, holdMs));
        return Response.json(left <= holdMs ? { active } : { pending: { waitMs: 20 } });
      },
    });
    const notes: number[] = [];
    const t0 = Date.now();
    const s = await openSession(
      apiClientFactory({ server: server.url.href, token: "p" }),
      server.url.href,
      undefined,
      "prj_1",
      ["linux/amd64"],
      { tags: [], push: false, outputs: [] },
      (_p, waited) => notes.push(waited),
    );
    const took = Date.now() - t0;
    s.close();
    server.stop(true);
    return { notes, asks, took, endpoint: s.connections[0]!.endpoint };
  }

  test("a builder that answers at once: no note", async () => {
    const r = await session(0, 0);
    expect(r.endpoint).toBe("tcp://127.0.0.1:1");
    // No note before WAIT_NOTE_AFTER_MS; a machine that stalled the session past it may show one.
    if (r.took < WAIT_NOTE_AFTER_MS) expect(r.notes).toEqual([]);
    else for (const waited of r.notes) expect(waited).toBeGreaterThanOrEqual(WAIT_NOTE_AFTER_MS - 5);
  });

  test("one held ask: the note comes while it is held, not after it", async () => {
    const r = await session(1200, 5000);
    expect(r.asks).toBe(1);
    expect(r.notes.length).toBe(1);
    expect(r.notes[0]!).toBeGreaterThanOrEqual(WAIT_NOTE_AFTER_MS - 5);
    expect(r.notes[0]!).toBeLessThan(r.took);
  });

  test("many short answers: one note per interval, not one per answer", async () => {
    const r = await session(1000, 100);
    expect(r.asks).toBeGreaterThan(5);
    expect(r.notes.length).toBe(1);
  });
});
