/**
 * @module test/e2e/egress-api
 * The egress policy through the compiled binary against a served appliance: owners edit, members
 * read, other tenants get 404, validation and wildcard semantics, runner hosts with agent tokens
 * (stored only hashed), the agent's long poll answering at once on a change, status and events
 * shown by `slipway egress apply-status|events`.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpPolicySource } from "../../src/agent/appliance-client.ts";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { serve } from "../support/serve.ts";

setDefaultTimeout(30_000);
const bin = slipwayBinary();
const work = mkdtempSync(join(tmpdir(), "slipway-egress-api-"));
const server = await serve(bin, join(work, "data"));
const admin = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
const caFile = join(server.dataDir, "ca.pem");
afterAll(async () => {
  await server.stop();
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});

async function cli(args: string[], token = admin) {
  const p = Bun.spawn([bin, ...args, "--server", server.url, "--cacert", caFile, "--token", token], {
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", HOME: work },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { stdout, stderr, code };
}
const api = (path: string, token: string, init: RequestInit = {}) =>
  server.get(path, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(init.headers ?? {}) },
  });

test("owners edit the policy, organization tokens only read it, other tenants get 404", async () => {
  expect((await cli(["orgs", "create", "--slug", "acme", "--name", "Acme"])).code).toBe(0);
  expect((await cli(["orgs", "create", "--slug", "other", "--name", "Other"])).code).toBe(0);
  expect((await cli(["egress", "set-mode", "--org", "acme", "enforce"])).code).toBe(0);
  expect((await cli(["egress", "set-default", "--org", "acme", "deny"])).code).toBe(0);
  const add = await cli([
    "egress",
    "add",
    "--org",
    "acme",
    "allow",
    "*.Example.COM",
    "--ports",
    "443",
    "--comment",
    "registry",
    "--json",
  ]);
  expect(add.code).toBe(0);
  expect(JSON.parse(add.stdout)).toMatchObject({ action: "allow", target: "*.example.com", ports: "443" });
  expect((await cli(["egress", "add", "--org", "acme", "deny", "10.1.2.3/8"])).stdout).toContain("10.0.0.0/8");
  expect((await cli(["egress", "add", "--org", "acme", "allow", "2001:db8::1"])).code).toBe(0);
  const bad = await cli(["egress", "add", "--org", "acme", "allow", "exa*mple.com"]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("wildcard");
  expect((await cli(["egress", "add", "--org", "acme", "allow", "host.test", "--ports", "70000"])).code).toBe(1);
  const show = JSON.parse((await cli(["egress", "show", "--org", "acme", "--json"])).stdout);
  expect(show).toMatchObject({ mode: "enforce", default_action: "deny" });
  expect(show.rules.map((r: { target: string }) => r.target)).toEqual([
    "*.example.com",
    "10.0.0.0/8",
    "2001:db8::1/128",
  ]);
  expect((await cli(["egress", "remove", "--org", "acme", "10.0.0.0/8"])).code).toBe(0);
  expect(JSON.parse((await cli(["egress", "show", "--org", "acme", "--json"])).stdout).rules).toHaveLength(2);
  // Another organization's owner: 404, as if acme did not exist.
  const orgs = (await (await api("/api/v1/orgs", admin)).json()) as { id: string; slug: string }[];
  const other = orgs.find((o) => o.slug === "other")!;
  const tokOther = (await (
    await api("/api/v1/tokens", admin, {
      method: "POST",
      body: JSON.stringify({ kind: "org", org: other.id, name: "o" }),
    })
  ).json()) as { token: string };
  expect((await api("/api/v1/orgs/acme/egress", tokOther.token)).status).toBe(404);
  // An organization token of acme may read, not change (a leaked automation credential cannot open the firewall).
  const acme = orgs.find((o) => o.slug === "acme")!;
  const tokAcme = (await (
    await api("/api/v1/tokens", admin, {
      method: "POST",
      body: JSON.stringify({ kind: "org", org: acme.id, name: "a" }),
    })
  ).json()) as { token: string };
  expect((await api("/api/v1/orgs/acme/egress", tokAcme.token)).status).toBe(200);
  expect(
    (
      await api("/api/v1/orgs/acme/egress/mode", tokAcme.token, {
        method: "PUT",
        body: JSON.stringify({ mode: "off" }),
      })
    ).status,
  ).toBe(403);
  expect(
    (
      await api("/api/v1/orgs/acme/egress/rules", admin, {
        method: "POST",
        body: JSON.stringify({ action: "allow", target: "x.test", extra: 1 }),
      })
    ).status,
  ).toBe(400);
});

test("runner hosts get an agent token, stored only hashed; the agent's long poll answers at once on a change, and is held open past the idle timeout", async () => {
  const r = await cli([
    "egress",
    "add-host",
    "--org",
    "acme",
    "--name",
    "runner-1",
    "--scope",
    "host",
    "--scope",
    "docker:*",
    "--json",
  ]);
  expect(r.code).toBe(0);
  const { id, token } = JSON.parse(r.stdout) as { id: string; token: string };
  expect(token).toMatch(/^slw_a_[A-Za-z0-9]{33}$/);
  const db = new Database(join(server.dataDir, "slipway.db"), { readonly: true });
  const row = db.query("SELECT token_sha256 FROM egress_runner_hosts WHERE id = ?").get(id) as {
    token_sha256: Uint8Array;
  };
  expect(Buffer.from(row.token_sha256).toString("hex")).toBe(
    new Bun.CryptoHasher("sha256").update(token).digest("hex"),
  );
  expect(readFileSync(join(server.dataDir, "slipway.db")).includes(Buffer.from(token))).toBe(false);
  db.close();
  // The agent token reaches only the agent endpoints.
  expect((await api("/api/v1/orgs/acme/egress", token)).status).toBe(403);
  const source = httpPolicySource({ server: server.url, token, caPem: server.ca });
  const first = await source.fetch(null, 0, new AbortController().signal);
  expect(first).toMatchObject({ mode: "enforce", default_action: "deny", scopes: ["host", "docker:*"] });
  expect(first.always_allow_hosts.length).toBeGreaterThan(0); // the appliance's API and build endpoint names
  const t0 = performance.now();
  const waiting = source.fetch(first.etag, 55, new AbortController().signal); // the longest wait the server holds
  await Bun.sleep(200);
  expect((await cli(["egress", "add", "--org", "acme", "deny", "203.0.113.0/24"])).code).toBe(0);
  const next = await waiting;
  // Woken by the change, not answered at the end of its 55 s wait (how soon is not asserted: a
  // CLI spawn on a loaded machine takes what it takes).
  expect(performance.now() - t0).toBeLessThan(45_000);
  expect(next.etag).not.toBe(first.etag);
  expect(next.rules.some((x) => x.target === "203.0.113.0/24")).toBe(true);
  // With nothing changing, the poll is held its whole wait, past the server's 10 s idle timeout.
  const t1 = performance.now();
  const unchanged = await source.fetch(next.etag, 12, new AbortController().signal);
  expect(unchanged.etag).toBe(next.etag);
  expect(performance.now() - t1).toBeGreaterThan(11_000);
  await source.reportStatus({ etag: next.etag, ok: true });
  await source.reportEvents([
    {
      action: "would-block",
      scope: "host",
      source: "uid:1001",
      dst: "203.0.113.9",
      port: 443,
      protocol: "tcp",
      hostname: "x.test",
      count: 2,
      at: new Date().toISOString(),
    },
  ]);
  await source.reportEvents([
    {
      action: "would-block",
      scope: "host",
      source: "uid:1001",
      dst: "203.0.113.9",
      port: 443,
      protocol: "tcp",
      hostname: "x.test",
      count: 3,
      at: new Date().toISOString(),
    },
  ]);
  const status = await cli(["egress", "apply-status", "--org", "acme"]);
  expect(status.stdout).toContain("runner-1");
  expect(status.stdout).toContain("ok");
  const events = JSON.parse((await cli(["egress", "events", "--org", "acme", "--json"])).stdout);
  expect(events).toEqual([
    expect.objectContaining({ dst: "203.0.113.9", port: 443, count: 5, hostname: "x.test", action: "would-block" }),
  ]);
  // Removing the host revokes the token.
  expect((await cli(["egress", "remove-host", "--org", "acme", id])).code).toBe(0);
  await expect(source.fetch(null, 0, new AbortController().signal)).rejects.toThrow("401");
  expect(server.logs()).not.toContain(token);
}, 60_000);

test("only the administrator makes a runner host local, with its own scopes; naming a host 'local' does nothing on the appliance host", async () => {
  const r = await cli([
    "egress",
    "add-host",
    "--org",
    "acme",
    "--name",
    "local",
    "--scope",
    "host",
    "--scope",
    "docker:*",
    "--json",
  ]);
  expect(r.code).toBe(0);
  const { id, token } = JSON.parse(r.stdout) as { id: string; token: string };
  expect((await cli(["egress", "local-hosts"])).stdout).toContain("no runner host is enforced on the appliance host");
  // An organization's credentials cannot designate it (an owner's: the authorization matrix).
  const orgs = (await (await api("/api/v1/orgs", admin)).json()) as { id: string; slug: string }[];
  const acme = orgs.find((o) => o.slug === "acme")!;
  const tokAcme = (await (
    await api("/api/v1/tokens", admin, {
      method: "POST",
      body: JSON.stringify({ kind: "org", org: acme.id, name: "l" }),
    })
  ).json()) as { token: string };
  const refused = await api(`/api/v1/egress/local-hosts/${id}`, tokAcme.token, {
    method: "PUT",
    body: JSON.stringify({ scopes: ["host"] }),
  });
  expect(refused.status).toBe(403);
  expect(refused.headers.get("content-type")).toBe("application/problem+json");
  expect((await cli(["egress", "set-local", id, "--scope", "docker:ci"], tokAcme.token)).code).toBe(1);

  const set = await cli(["egress", "set-local", id, "--scope", "docker:ci"]);
  expect(set.code).toBe(0);
  expect(set.stdout).toContain("scopes docker:ci");
  const listed = JSON.parse((await cli(["egress", "local-hosts", "--json"])).stdout) as {
    id: string;
    local_scopes: string[];
  }[];
  expect(listed).toEqual([expect.objectContaining({ id, local_scopes: ["docker:ci"] })]);
  expect((await cli(["egress", "set-local", id, "--scope", "docker:bad name"])).stderr).toContain(
    "not a Docker network name",
  );

  // apply-status: the local scopes, and the resolvers the agent allows for DNS only.
  const source = httpPolicySource({ server: server.url, token, caPem: server.ca });
  const p = await source.fetch(null, 0, new AbortController().signal);
  expect(p.scopes).toEqual(["host", "docker:*"]); // a remote agent with this token: the organization's scopes
  await source.reportStatus({ etag: p.etag, ok: true, dns_resolvers: ["192.0.2.53"] });
  const status = await cli(["egress", "apply-status", "--org", "acme"]);
  expect(status.stdout).toContain("(local: docker:ci)");
  expect(status.stdout).toContain("192.0.2.53");
  expect(status.stdout).toContain("allowed for DNS only, 53/udp and 53/tcp");

  expect((await cli(["egress", "unset-local", id])).code).toBe(0);
  expect((await cli(["egress", "local-hosts"])).stdout).toContain("no runner host is enforced on the appliance host");
  expect((await cli(["egress", "unset-local", id])).code).toBe(1);
  expect((await cli(["egress", "remove-host", "--org", "acme", id])).code).toBe(0);
});

test("a rule for an IPv4-mapped IPv6 address is stored as its IPv4 address", async () => {
  const r = await cli(["egress", "add", "--org", "acme", "deny", "::ffff:10.0.0.1", "--json"]);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ target: "10.0.0.1/32" });
  const bad = await cli(["egress", "add", "--org", "acme", "deny", "::ffff:0:0/64"]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("/96 or longer");
  expect((await cli(["egress", "remove", "--org", "acme", "::ffff:10.0.0.1"])).code).toBe(0);
});
