/**
 * @module test/e2e/depot-login
 * `depot login` and `depot logout` (the official depot CLI, unchanged) against the compiled
 * `serve`: FinishLogin is a server stream held open until a person approves the device login,
 * so an approval that comes 30 s later (well past the server's 10 s idle timeout) must still
 * reach the CLI, which saves a working token. A request that merely stalls is still cut.
 * Against phishing: the printed link carries the code only in its fragment (the approval page
 * never fills it in), the approver sees the CLI's address and user agent, the token lives 30
 * days, and StartLogin shares the device-login start's rate limit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { DEPOT, depotEnv } from "../support/depot.ts";
import { integrationSuite } from "../support/integration.ts";
import { serve, type Served } from "../support/serve.ts";

const missing = existsSync(DEPOT) ? null : `the depot CLI is not installed (${DEPOT}; npm installs it on linux-x64)`;

integrationSuite("depot login and logout against slipway serve", missing, () => {
  const work = mkdtempSync(join(tmpdir(), "slipway-depot-login-"));
  let s: Served;
  let admin = "";
  const home = join(work, "home");
  const env = () => depotEnv(s, home, null, { XDG_CONFIG_HOME: join(home, ".config") });
  const depotConfig = () => join(home, ".config", "depot", "depot.yaml");
  const savedToken = () =>
    existsSync(depotConfig()) ? /api_token:\s*"?([^"\s]+)"?/.exec(readFileSync(depotConfig(), "utf8"))?.[1] : undefined;

  beforeAll(async () => {
    mkdirSync(home, { recursive: true });
    s = await serve(
      slipwayBinary(),
      join(work, "data"),
      ["--set", "volumes.encryption=none"],
      {},
      { publicHost: "localhost" },
    );
    admin = readFileSync(join(s.dataDir, "initial-admin-token"), "utf8").trim();
  });
  afterAll(async () => {
    await s?.stop();
    await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
    rmSync(work, { recursive: true, force: true });
  });

  describe("device login through the FinishLogin stream", () => {
    test("approved after 30 s: depot login succeeds and saves a token that works; depot logout forgets it", async () => {
      const p = Bun.spawn([DEPOT, "login"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: env() });
      const decoder = new TextDecoder();
      let out = "";
      const reader = p.stdout.getReader();
      let code: string | undefined;
      while (!code) {
        const { value, done } = await reader.read();
        if (done) break;
        out += decoder.decode(value);
        code = /\/device#([A-Z-]+)/.exec(out)?.[1];
      }
      expect(code, out).toBeTruthy();
      const rest = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          out += decoder.decode(value);
        }
      })();
      const t0 = Date.now();
      await Bun.sleep(30_000);
      expect(p.exitCode).toBeNull(); // still waiting for the approval, not cut off
      // What the approver sees: the depot CLI's own address and user agent, not a name it chose.
      const shown = await s.get(`/api/v1/auth/device/${code}`, { headers: { authorization: `Bearer ${admin}` } });
      expect(await shown.json()).toMatchObject({
        client_name: "depot CLI",
        ip: expect.stringMatching(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/),
        user_agent: expect.stringMatching(/^depot-cli\/\d+\.\d+\.\d+\//),
        token_lifetime_days: 30,
      });
      const approved = await s.get("/api/v1/auth/device/approve", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ user_code: code }),
      });
      expect(approved.status).toBe(204);
      const approvedAt = Date.now();
      const [exit, err] = await Promise.all([p.exited, new Response(p.stderr).text(), rest]).then(
        ([c, e]) => [c, e] as const,
      );
      const waited = Date.now() - t0;
      expect(exit, out + err).toBe(0);
      expect(out).toContain("Successfully authenticated!");
      // The stream answers at its next 2 s poll of the approval; a stream that missed it would hold
      // the CLI until the device code expires. A minute tells the two apart on any busy machine.
      expect(Date.now() - approvedAt).toBeLessThan(60_000);
      expect(s.logs()).not.toContain("timed out a request");

      const token = savedToken();
      expect(token).toMatch(/^slw_u_/);
      const me = await s.get("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      expect(((await me.json()) as { username: string }).username).toBe("admin");
      const mine = (await (
        await s.get("/api/v1/tokens", { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { name: string; expires_at: string }[];
      const made = mine.find((t) => t.name === "device login (depot CLI)");
      expect(Math.abs(Date.parse(made!.expires_at) - (Date.now() + 30 * 86400_000))).toBeLessThan(5 * 60_000);
      // The saved login drives the CLI: its organization was selected, projects are listed.
      const listed = Bun.spawnSync([DEPOT, "projects", "list", "--output", "json"], {
        env: env(),
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(listed.exitCode, listed.stderr.toString()).toBe(0);

      const logout = Bun.spawnSync([DEPOT, "logout"], { env: env(), stdout: "pipe", stderr: "pipe" });
      expect(logout.exitCode, logout.stderr.toString()).toBe(0);
      expect(logout.stdout.toString()).toContain("Logout successful!");
      expect(savedToken()).toBeUndefined();
      // `depot logout` only forgets the token locally (the CLI sends nothing); it stays valid
      // until it expires or is revoked (`slipway tokens revoke`).
      const afterLogout = Bun.spawnSync([DEPOT, "projects", "list", "--output", "json"], {
        env: env(),
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(afterLogout.exitCode).not.toBe(0);
      console.log(`  depot login approved after ${Math.round(waited / 1000)} s: ok`);
    }, 90_000);

    test("an unknown login id ends the stream at once with a clear error", async () => {
      const r = await s.get("/depot.cli.v1beta1.LoginService/FinishLogin", {
        method: "POST",
        headers: { "content-type": "application/connect+json", "connect-protocol-version": "1" },
        body: frameJson({ id: "not-a-login" }),
      });
      expect(r.status).toBe(200);
      const body = new Uint8Array(await r.arrayBuffer());
      expect(body[0]! & 0x02).toBe(2); // the end-of-stream frame, carrying the error
      const end = JSON.parse(new TextDecoder().decode(body.subarray(5))) as {
        error: { code: string; message: string };
      };
      expect(end.error.code).toBeTruthy();
      expect(end.error.message).toMatch(/expired|denied|used/);
    });

    test("StartLogin is rate-limited per address (10 a minute, with the REST start): resource_exhausted", async () => {
      const startLogin = () =>
        s.get("/depot.cli.v1beta1.LoginService/StartLogin", {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1" },
          body: "{}",
        });
      const statuses: number[] = [];
      let last: Response | null = null;
      for (let i = 0; i < 12; i++) {
        last = await startLogin();
        statuses.push(last.status);
        if (last.status !== 200) break;
      }
      expect(statuses.slice(0, -1).every((c) => c === 200)).toBe(true);
      expect(statuses.length).toBeLessThanOrEqual(11);
      expect(last!.status).toBe(429);
      expect(((await last!.json()) as { code: string }).code).toBe("resource_exhausted");
      // The REST start shares the limit.
      expect(
        (
          await s.get("/api/v1/auth/device", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{}",
          })
        ).status,
      ).toBe(429);
    });

    test("other requests keep the idle timeout: a request that stalls mid-body is cut", async () => {
      const port = Number(new URL(s.url).port);
      const sock = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: s.ca });
      await new Promise((r, j) => sock.once("secureConnect", r).once("error", j));
      const t0 = Date.now();
      sock.write(
        `POST /api/v1/orgs HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"slug":`,
      );
      sock.resume();
      await new Promise((r) => sock.once("close", r));
      const after = Date.now() - t0;
      expect(after).toBeGreaterThan(5_000);
      expect(after).toBeLessThan(20_000);
    }, 30_000);
  });
});

function frameJson(msg: unknown): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(msg));
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}
