/**
 * @module api/connect/routes.test
 * Authentication comes before the body: an anonymous or bad credential is answered 401 without
 * the body being read (so a hostile body costs nothing), on every unary method and the status
 * stream; StartLogin and FinishLogin, anonymous by design, only have the size caps, and
 * StartLogin shares the REST device-login start's rate limit per address.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditServiceFactory } from "../../auth/audit.ts";
import { deviceLoginServiceFactory } from "../../auth/device-login.ts";
import { tokensServiceFactory } from "../../auth/api-tokens.ts";
import { applyMigrations, openDatabase } from "../../db/index.ts";
import type { Actor } from "../../auth/actor.ts";
import { UnauthenticatedError } from "../../errors.ts";
import { METHODS, type MethodName } from "../../wire/depot.ts";
import type { IdentityContext } from "../identity.ts";
import { connectRoutes, type ConnectDeps } from "./routes.ts";

const MIB = 1024 * 1024;
const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent } as unknown as ConnectDeps["log"];

function app(
  actorOf: (r: Request) => Promise<Actor>,
  deviceLogins: unknown = {
    start: () => ({ device_code: "dc", user_code: "BCDF-GHJK", verification_uri: "https://slipway.test/device" }),
    poll: () => ({ status: "pending" }),
  },
  builds = {} as ConnectDeps["builds"],
) {
  const ctx = {
    actorOf,
    ip: () => "127.0.0.1",
    publicUrl: "https://slipway.test",
    deviceLogins,
  } as unknown as IdentityContext;
  return connectRoutes({
    ctx,
    builds,
    resetCache: async () => {},
    log: silent,
    defaultPlatform: "linux/amd64",
    maxUnaryBytes: MIB,
    maxMessageBytes: 16 * MIB,
    imageExport: () => false,
  });
}

/** A 16 MiB `12 00` body that counts how much of it the server pulled. */
function hostileBody() {
  const chunk = new Uint8Array(64 * 1024).map((_, i) => (i % 2 ? 0x00 : 0x12));
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulled >= 16 * MIB) return c.close();
      pulled += chunk.length;
      c.enqueue(chunk);
    },
  });
  return { body, pulled: () => pulled };
}

const anonymous = async (): Promise<Actor> => {
  throw new UnauthenticatedError("this endpoint needs credentials: Authorization: Bearer <token>");
};

describe("Connect: authentication before the body", () => {
  const names = Object.keys(METHODS) as MethodName[];

  test("every method but the two login calls answers an anonymous caller 401 / unauthenticated without reading the body", async () => {
    const a = app(anonymous);
    for (const name of names.filter((n) => n !== "startLogin" && n !== "finishLogin")) {
      const m = METHODS[name];
      const stream = m.kind !== "unary";
      const hostile = hostileBody();
      const r = await a.handle(
        new Request(`http://localhost${m.path}`, {
          method: "POST",
          headers: { "content-type": stream ? "application/connect+proto" : "application/proto" },
          body: hostile.body,
          duplex: "half",
        } as RequestInit),
      );
      const text = await r.text();
      if (stream) {
        expect({ name, status: r.status }).toEqual({ name, status: 200 }); // Connect streams carry errors in the end frame
        expect(JSON.parse(text.slice(5)).error.code).toBe("unauthenticated");
      } else {
        expect({ name, status: r.status }).toEqual({ name, status: 401 });
        expect(JSON.parse(text).code).toBe("unauthenticated");
      }
      // A stream source may be asked for its first chunk ahead of any read; never more.
      expect({ name, pulled: hostile.pulled() <= 64 * 1024 }).toEqual({ name, pulled: true });
    }
  });

  test("StartLogin (anonymous by design): a body over 1 MiB is refused 429 / resource_exhausted, unread past the cap", async () => {
    const hostile = hostileBody();
    const r = await app(anonymous).handle(
      new Request(`http://localhost${METHODS.startLogin.path}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: hostile.body,
        duplex: "half",
      } as RequestInit),
    );
    expect(r.status).toBe(429);
    expect(((await r.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(hostile.pulled()).toBeLessThanOrEqual(MIB + 2 * 64 * 1024);
    const ok = await app(anonymous).handle(
      new Request(`http://localhost${METHODS.startLogin.path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      }),
    );
    expect(ok.status).toBe(200);
  });

  test("FinishLogin (anonymous by design): a 16 MiB frame is refused from its header; only the first message is read", async () => {
    const hostile = hostileBody(); // 12 00 12 00 ...: a frame header claiming 0x00120012 bytes (1.1 MiB) > 64 KiB
    const r = await app(anonymous).handle(
      new Request(`http://localhost${METHODS.finishLogin.path}`, {
        method: "POST",
        headers: { "content-type": "application/connect+proto" },
        body: hostile.body,
        duplex: "half",
      } as RequestInit),
    );
    expect(r.status).toBe(200);
    expect(JSON.parse((await r.text()).slice(5)).error.code).toBe("resource_exhausted");
    expect(hostile.pulled()).toBeLessThanOrEqual(2 * 64 * 1024);
  });

  test("an authenticated caller's unary body over 1 MiB is resource_exhausted; the decoder's limits are too", async () => {
    const user = async (): Promise<Actor> =>
      ({ kind: "user", userId: "u1", username: "u", isAdmin: false, tokenId: null, memberships: {} }) as Actor;
    const big = await app(user).handle(
      new Request(`http://localhost${METHODS.createBuild.path}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: hostileBody().body,
        duplex: "half",
      } as RequestInit),
    );
    expect(big.status).toBe(429);
    expect(((await big.json()) as { message: string }).message).toContain(
      "larger than configured readMaxBytes 1048576",
    );
    const bomb = new Uint8Array(MIB).map((_, i) => (i % 2 ? 0x00 : 0x12)); // within the size cap: 512 Ki empty options
    const r = await app(user).handle(
      new Request(`http://localhost${METHODS.createBuild.path}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: bomb,
      }),
    );
    expect(r.status).toBe(429);
    expect(((await r.json()) as { message: string }).message).toBe(
      "request too large: depot.cli.v1.CreateBuildRequest holds more than 200000 fields",
    );
  });
});

describe("Connect: StartLogin", () => {
  test("is rate-limited per address together with the REST start; its link carries the code only in the fragment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-startlogin-"));
    const db = openDatabase(join(dir, "t.db"));
    try {
      applyMigrations(db);
      const audit = auditServiceFactory({ db });
      const logins = deviceLoginServiceFactory({ db, audit, tokens: tokensServiceFactory({ db, audit }) });
      const a = app(anonymous, logins);
      const startLogin = () =>
        a.handle(
          new Request(`http://localhost${METHODS.startLogin.path}`, {
            method: "POST",
            headers: { "content-type": "application/json", "user-agent": "depot-cli/2.102.12/linux/amd64/terminal" },
            body: "{}",
          }),
        );
      // Five starts the REST way (the same service, the same address)...
      for (let i = 0; i < 5; i++)
        logins.start({ clientName: "slipway", ip: "127.0.0.1", userAgent: null }, "https://slipway.test");
      // ...leave five for StartLogin in this minute.
      for (let i = 0; i < 5; i++) {
        const r = await startLogin();
        expect(r.status).toBe(200);
        const { id, approveUrl } = (await r.json()) as { id: string; approveUrl: string };
        expect(id.length).toBeGreaterThan(20);
        expect(approveUrl).toMatch(
          /^https:\/\/slipway\.test\/device#[BCDFGHJKMNPQRSTVWXZ]{4}-[BCDFGHJKMNPQRSTVWXZ]{4}$/,
        );
      }
      const limited = await startLogin();
      expect(limited.status).toBe(429);
      expect(((await limited.json()) as { code: string; message: string }).code).toBe("resource_exhausted");
      expect(() =>
        logins.start({ clientName: null, ip: "127.0.0.1", userAgent: null }, "https://slipway.test"),
      ).toThrow(/too many attempts/);
      // Another address is not affected; the rows written are the ten accepted starts.
      expect(() =>
        logins.start({ clientName: null, ip: "192.0.2.7", userAgent: null }, "https://slipway.test"),
      ).not.toThrow();
      expect((db.query("SELECT count(*) AS n FROM device_logins").get() as { n: number }).n).toBe(11);
      const ua = db.query("SELECT user_agent FROM device_logins WHERE client_name = 'depot CLI' LIMIT 1").get() as {
        user_agent: string;
      };
      expect(ua.user_agent).toBe("depot-cli/2.102.12/linux/amd64/terminal");
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Connect: GetBuildKitConnection holds while the builder starts", () => {
  const token = async (): Promise<Actor> =>
    ({ kind: "project-token", tokenId: "tok_1", orgId: "org_a", projectId: "prj_a" }) as Actor;
  /** Builds whose connection() records the hold it was given and answers pending. */
  const recording = () => {
    const holds: { ms?: number; signal?: AbortSignal }[] = [];
    const builds = {
      connection: async (_a: Actor, _id: string, _p: string, hold: { ms?: number; signal?: AbortSignal } = {}) => {
        holds.push(hold);
        return { kind: "pending" as const, waitMs: 20 };
      },
    } as unknown as ConnectDeps["builds"];
    return { builds, holds };
  };
  const ask = (a: ReturnType<typeof app>, headers: Record<string, string> = {}) =>
    a.handle(
      new Request(`http://localhost${METHODS.getBuildKitConnection.path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ buildId: "bld_a", platform: "BUILDER_PLATFORM_AMD64" }),
      }),
    );

  test("the hold is 5 s with the call's signal, shortened to end before the client's Connect-Timeout-Ms; the answer is pending as the depot CLI knows it", async () => {
    const { builds, holds } = recording();
    const a = app(token, undefined, builds);
    const r = await ask(a);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ pending: { waitMs: 20 } });
    expect(holds[0]!.ms).toBe(5000);
    expect(holds[0]!.signal).toBeInstanceOf(AbortSignal);
    await ask(a, { "connect-timeout-ms": "2000" });
    // The remaining time is counted from when the call arrived, so a busy machine may take a
    // millisecond or two off before the handler reads it: the hold ends the margin early, no later.
    expect(holds[1]!.ms).toBeLessThanOrEqual(1750);
    expect(holds[1]!.ms).toBeGreaterThan(1000); // shortened by the margin once, not more
    await ask(a, { "connect-timeout-ms": "100" });
    expect(holds[2]!.ms).toBe(0); // too short to hold: answered at once
  });
});
