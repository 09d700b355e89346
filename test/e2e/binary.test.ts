/**
 * @module test/e2e/binary
 * The compiled binary, run from a directory with no source tree: first start, HTTPS with the
 * appliance's own CA, the admin token, problem+json for bad requests, offline docs, metrics,
 * logs free of secrets, backup while serving, restart, and a clean SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { embeddedMigrations } from "../../src/db/index.ts";
import { freePorts, runSlipway, serve, type Served } from "../support/serve.ts";

let bin: string;
let work: string;
let server: Served;
let token: string;

beforeAll(async () => {
  bin = slipwayBinary();
  work = mkdtempSync(join(tmpdir(), "slipway-e2e-"));
  // Plain cache volumes: the volumes check then warns ("not encrypted") on every host, so the
  // readiness verdict below is a fixed expectation rather than whatever this kernel offers.
  server = await serve(bin, join(work, "data"), ["--set", "volumes.encryption=none"]);
  token = readFileSync(join(server.dataDir, "initial-admin-token"), "utf8").trim();
});

afterAll(async () => {
  // SIGTERM, not -9: a killed serve leaves its builder network policy's chains and sets in place.
  if (server?.proc.exitCode === null) await server.stop();
  await removeBuildersOfServed();
  rmSync(work, { recursive: true, force: true });
});

describe("compiled binary", () => {
  test("version and --version print the release, with --json too", async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dir, "..", "..", "package.json"), "utf8"));
    const a = await runSlipway(bin, ["version"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toContain(`slipway ${pkg.version}`);
    const b = await runSlipway(bin, ["--version"]);
    expect(b.stdout).toBe(a.stdout);
    const c = await runSlipway(bin, ["version", "--json"]);
    expect(JSON.parse(c.stdout).version).toBe(pkg.version);
  });

  test("first start creates key, CA, database and admin token with private modes", () => {
    const mode = (f: string) => statSync(join(server.dataDir, f)).mode & 0o777;
    expect(mode(".")).toBe(0o700);
    expect(mode("master.key")).toBe(0o600);
    expect(mode("initial-admin-token")).toBe(0o600);
    expect(token).toMatch(/^slw_u_[A-Za-z0-9]{33}$/);
    expect(readFileSync(join(server.dataDir, "ca.pem"), "utf8")).toContain("BEGIN CERTIFICATE");
  });

  test("/readyz is health+json listing the database checks; /livez passes", async () => {
    const r = await server.get("/readyz");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/health+json");
    const body = (await r.json()) as any;
    // encryption = none is set above: the volumes check warns, so the whole report does.
    expect(body.checks["volumes:encryption"][0]).toMatchObject({ status: "warn", observedValue: "none" });
    expect(body.status).toBe("warn");
    expect(body.checks["database:open"][0].status).toBe("pass");
    expect(body.checks["database:migrations"][0].status).toBe("pass");
    const l = await server.get("/livez");
    expect(((await l.json()) as any).status).toBe("pass");
  });

  test("serves TLS 1.2+ only, with HSTS and a certificate chaining to ca.pem", async () => {
    const r = await server.get("/livez");
    expect(r.headers.get("strict-transport-security")).toMatch(/^max-age=\d+/);
    const port = Number(new URL(server.url).port);
    const attempt = (maxVersion: "TLSv1.1" | "TLSv1.2") =>
      new Promise<string>((resolve) => {
        const s = connect({
          host: "127.0.0.1",
          port,
          servername: "localhost",
          ca: server.ca,
          minVersion: "TLSv1",
          maxVersion,
        });
        s.on("secureConnect", () => (resolve(`connected ${s.getProtocol()}`), s.end()));
        s.on("error", (e) => resolve(e.message));
      });
    expect(await attempt("TLSv1.1")).not.toStartWith("connected");
    expect(await attempt("TLSv1.2")).toBe("connected TLSv1.2"); // control: the same client, allowed 1.2
    await expect(fetch(`${server.url}/livez`)).rejects.toThrow(); // not trusted without ca.pem
  });

  test("the admin token authenticates; bad credentials are 401 problem+json", async () => {
    const ok = await server.get("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect((await ok.json()) as any).toMatchObject({ username: "admin", is_admin: true });
    for (const authorization of [`Bearer slw_u_${"A".repeat(33)}`, "Basic YWRtaW46YWRtaW4=", "Bearer nonsense"]) {
      const r = await server.get("/api/v1/me", { headers: { authorization } });
      expect(r.status).toBe(401);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
    }
  });

  test("the API certificate's issuance is in the appliance audit log", async () => {
    const r = await server.get("/api/v1/audit", { headers: { authorization: `Bearer ${token}` } });
    const entries = (await r.json()) as { action: string; actor: string; details: { usage: string } }[];
    expect(entries.find((e) => e.action === "certificate.issue")).toMatchObject({
      actor: "appliance",
      details: { usage: "server" },
    });
  });

  test("unknown route, oversized body and chunked oversized body answer problem+json", async () => {
    const nf = await server.get("/api/v1/no-such-thing");
    expect(nf.status).toBe(404);
    const p = (await nf.json()) as any;
    expect(p).toMatchObject({ status: 404, title: "Not found", instance: "/api/v1/no-such-thing" });
    expect(p.request_id).toBe(nf.headers.get("x-request-id"));

    const big = "x".repeat(2 * 1024 * 1024);
    const tooBig = await server.get("/api/v1/me", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: big,
    });
    expect(tooBig.status).toBe(413);
    expect(tooBig.headers.get("content-type")).toBe("application/problem+json");
    expect(((await tooBig.json()) as any).detail).toContain("exceeds the limit");

    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    // Chunked, no Content-Length, to a route that takes a body: counted while read, refused.
    const orgsBefore = (
      (await (await server.get("/api/v1/orgs", { headers: { authorization: `Bearer ${token}` } })).json()) as unknown[]
    ).length;
    const chunked = await server.get("/api/v1/orgs", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: stream,
    });
    expect(chunked.status).toBe(413);
    expect(chunked.headers.get("content-type")).toBe("application/problem+json");
    expect(((await chunked.json()) as any).detail).toContain("exceeds the limit");
    const orgsAfter = (
      (await (await server.get("/api/v1/orgs", { headers: { authorization: `Bearer ${token}` } })).json()) as unknown[]
    ).length;
    expect(orgsAfter).toBe(orgsBefore);
  });

  test("a request id is generated, or a well-formed incoming one is kept", async () => {
    const a = await server.get("/livez");
    expect(a.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const b = await server.get("/livez", { headers: { "x-request-id": "proxy-123" } });
    expect(b.headers.get("x-request-id")).toBe("proxy-123");
    const c = await server.get("/livez", { headers: { "x-request-id": "bad id with spaces" } });
    expect(c.headers.get("x-request-id")).not.toBe("bad id with spaces");
  });

  test("OpenAPI document and a docs page that loads nothing from the internet", async () => {
    const spec = (await (await server.get("/api/v1/openapi.json")).json()) as any;
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(["/livez", "/readyz", "/metrics", "/api/v1/me"]));
    const docs = await server.get("/api/v1/docs");
    // Only this server's scripts (the inline init by its hash), never framed.
    expect(docs.headers.get("content-security-policy")).toMatch(
      /script-src 'self' 'sha256-[A-Za-z0-9+/]+=*'; .*frame-ancestors 'none'/,
    );
    const html = await docs.text();
    const srcs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs.length).toBeGreaterThan(0);
    for (const s of srcs) {
      expect(s.startsWith("/")).toBe(true);
      const r = await server.get(s);
      expect(r.status).toBe(200);
    }
    expect(html).not.toMatch(/https?:\/\//i);
    // The spec URL the page hands Swagger UI must resolve from the page's own location.
    const specUrl = /url: "([^"]+)"/.exec(html)?.[1];
    expect(specUrl).toBeDefined();
    const resolved = new URL(specUrl!, `${server.url}/api/v1/docs`);
    expect((await server.get(resolved.pathname)).status).toBe(200);
  });

  test("the build endpoint: mutual TLS on --build-listen; no client certificate or no build means refused", async () => {
    const tryConnect = (opts: { cert?: string; key?: string }) =>
      new Promise<{ authorized: boolean; peerCN: string; closedBy: "server" | "error"; gotBytes: boolean }>(
        (resolve) => {
          const sock = connect({
            host: "127.0.0.1",
            port: server.buildPort,
            servername: "localhost",
            ca: server.ca,
            ALPNProtocols: ["h2"],
            ...opts,
          });
          let authorized = false;
          let peerCN = "";
          let gotBytes = false;
          sock.on("secureConnect", () => {
            authorized = sock.authorized;
            peerCN = String(sock.getPeerCertificate().subject?.CN ?? "");
            sock.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
          });
          sock.on("data", () => (gotBytes = true));
          sock.on("close", () => resolve({ authorized, peerCN, closedBy: "server", gotBytes }));
          sock.on("error", () => resolve({ authorized, peerCN, closedBy: "error", gotBytes }));
        },
      );
    const anonymous = await tryConnect({});
    expect(anonymous.gotBytes).toBe(false);

    // A genuine per-build certificate from this appliance's CA (issued offline on its data dir),
    // for a build the appliance does not know: the router refuses it.
    const { openDatabase } = await import("../../src/db/index.ts");
    const { createSealer, loadOrCreateMasterKey } = await import("../../src/secrets/index.ts");
    const { pkiServiceFactory } = await import("../../src/pki/index.ts");
    const db = openDatabase(join(server.dataDir, "slipway.db"));
    const pki = pkiServiceFactory({
      db,
      sealer: await createSealer(loadOrCreateMasterKey({ dataDir: server.dataDir }).bytes),
      applianceId: (db.query("SELECT id FROM appliance").get() as { id: string }).id,
    });
    const cert = await pki.issueBuildClientCertificate({
      orgId: "org_x",
      projectId: "prj_x",
      buildId: "bld_unknown",
      platform: "amd64",
      lifetimeMs: 600_000,
      requester: "test",
    });
    db.close();
    const unknown = await tryConnect({ cert: cert.chainPem, key: cert.keyPem! });
    expect(unknown.authorized).toBe(true); // the endpoint's certificate verifies against ca.pem
    expect(unknown.gotBytes).toBe(false);
    const metrics = await (await server.get("/metrics")).text();
    expect(metrics).toMatch(/slipway_router_refused_total\{reason="no_build"\} [1-9]/);
    const ready = (await (await server.get("/readyz")).json()) as { checks: Record<string, { status: string }[]> };
    expect(ready.checks["build-endpoint:listening"]![0]!.status).toBe("pass");
  });

  test("the web UI is embedded", async () => {
    const r = await server.get("/");
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('<script type="module" src="/ui/app.js"></script>');
    // The bundle built into the binary: the sign-in page's own words, minified JavaScript.
    const js = await server.get("/ui/app.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(await js.text()).toContain("Sign in to Slipway");
    expect((await server.get("/ui/app.css")).status).toBe(200);
  });

  test("metrics: Prometheus text for loopback callers, counting requests", async () => {
    expect((await server.get("/livez")).status).toBe(200); // counted below, whatever ran before
    const r = await server.get("/metrics");
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toContain("# TYPE slipway_http_requests_total counter");
    expect(text).toMatch(/slipway_http_requests_total\{route="\/livez",method="GET",status="200"\} \d+/);
    expect(text).toMatch(/process_resident_memory_bytes \d+/);
  });

  test("backup works while serve runs and yields a consistent database", async () => {
    const out = join(work, "copy.db");
    const r = await runSlipway(bin, ["backup", "--data-dir", server.dataDir, "--out", out, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ file: out, schema_version: embeddedMigrations.length });
    const db = new Database(out, { readonly: true });
    expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
    expect((db.query("SELECT username FROM users").all() as { username: string }[]).map((u) => u.username)).toEqual([
      "admin",
    ]);
    db.close();
    const again = await runSlipway(bin, ["backup", "--data-dir", server.dataDir, "--out", out]);
    expect(again.code).toBe(2); // refuses to overwrite without --force
  });

  test("logs are JSON lines that never contain a credential or private key", async () => {
    const lines = server.logs().trim().split("\n");
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    const all = server.logs();
    expect(all).toContain("initial-admin-token");
    expect(all).not.toContain(token);
    expect(all).not.toContain("PRIVATE KEY");
    expect(all).not.toContain(readFileSync(join(server.dataDir, "master.key"), "utf8").trim());
  });

  // These two stop a serve: each starts its own, so the shared one above stays up for the others
  // and each test runs alone (bun test -t NAME) as well as in any order.
  test("SIGTERM stops cleanly and checkpoints the database", async () => {
    const own = await serve(bin, join(work, "sigterm-data"), ["--set", "volumes.encryption=none"]);
    try {
      const admin = readFileSync(join(own.dataDir, "initial-admin-token"), "utf8").trim();
      // A write, so the WAL holds something the shutdown must checkpoint.
      const made = await own.get("/api/v1/orgs", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
        body: JSON.stringify({ slug: "walorg", name: "WAL org" }),
      });
      expect(made.status).toBe(201);
    } finally {
      expect(await own.stop()).toBe(0);
    }
    expect(own.logs()).toContain("stopped cleanly");
    const wal = join(own.dataDir, "slipway.db-wal");
    expect(!existsSync(wal) || statSync(wal).size === 0).toBe(true);
    const db = new Database(join(own.dataDir, "slipway.db"), { readonly: true });
    expect(db.query("SELECT slug FROM organizations WHERE slug = 'walorg'").all()).toEqual([{ slug: "walorg" }]);
    db.close();
  });

  test("a restart keeps the CA and the admin, and creates no second admin", async () => {
    const dataDir = join(work, "restart-data");
    const first = await serve(bin, dataDir, ["--set", "volumes.encryption=none"]);
    expect(await first.stop()).toBe(0);
    const admin = readFileSync(join(dataDir, "initial-admin-token"), "utf8").trim();
    const caBefore = readFileSync(join(dataDir, "ca.pem"), "utf8");
    const again = await serve(bin, dataDir, ["--set", "volumes.encryption=none"]);
    try {
      expect(readFileSync(join(dataDir, "ca.pem"), "utf8")).toBe(caBefore);
      const me = await again.get("/api/v1/me", { headers: { authorization: `Bearer ${admin}` } });
      expect(me.status).toBe(200);
      expect(first.logs()).toContain("created the administrator");
      expect(again.logs()).not.toContain("created the administrator");
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });
});

describe("serving modes", () => {
  test("an operator-provided certificate is served instead of the appliance's own", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-optls-"));
    try {
      const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
      const r = Bun.spawnSync(
        [
          "openssl",
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=DNS:localhost",
          "-days",
          "1",
          "-keyout",
          key,
          "-out",
          cert,
        ],
        { stderr: "pipe" },
      );
      expect(r.exitCode).toBe(0);
      const pem = readFileSync(cert, "utf8");
      const s = await serve(
        bin,
        join(dir, "data"),
        ["--set", `server.tls_cert_file=${cert}`, "--set", `server.tls_key_file=${key}`],
        {},
        { trust: pem },
      );
      try {
        expect((await s.get("/livez")).status).toBe(200);
        const applianceCa = readFileSync(join(s.dataDir, "ca.pem"), "utf8");
        await expect(fetch(`${s.url}/livez`, { tls: { ca: applianceCa } })).rejects.toThrow();
        const db = new Database(join(s.dataDir, "slipway.db"), { readonly: true });
        // Only the build endpoint's certificate was issued; the API uses the operator's.
        expect(db.query("SELECT requester FROM certificate_issuances").all()).toEqual([
          { requester: "appliance:build-endpoint" },
        ]);
        db.close();
      } finally {
        expect(await s.stop()).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--insecure-http serves plain HTTP without HSTS, and says so in the log", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-http-"));
    try {
      const s = await serve(bin, join(dir, "data"), ["--insecure-http"], {}, { http: true });
      try {
        const r = await fetch(`${s.url}/livez`);
        expect(r.status).toBe(200);
        expect(r.headers.get("strict-transport-security")).toBeNull();
        expect(s.logs()).toContain("serving plain HTTP (--insecure-http)");
      } finally {
        expect(await s.stop()).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("doctor --json: every check has a status; a port in use and a readable master key fail it (exit 1)", async () => {
    const CHECKS = [
      "docker",
      "builder-image",
      "emulation",
      "cryptsetup",
      "dm-crypt",
      "volumes",
      "iptables",
      "ipset",
      "builders:network-policy",
      "port:server.listen",
      "port:server.build_listen",
      "data-dir",
      "master-key",
      "registry",
    ];
    type Finding = { check: string; status: string; message: string };
    const doctor = async (dataDir: string, listen: string, buildListen: string) => {
      const r = await runSlipway(bin, [
        "doctor",
        "--json",
        "--data-dir",
        dataDir,
        "--set",
        `server.listen=${listen}`,
        "--set",
        `server.build_listen=${buildListen}`,
      ]);
      const { findings } = JSON.parse(r.stdout) as { findings: Finding[] };
      expect(findings.map((f) => f.check)).toEqual(CHECKS);
      for (const f of findings) expect(["ok", "warn", "fail"]).toContain(f.status);
      return { code: r.code, by: Object.fromEntries(findings.map((f) => [f.check, f])) as Record<string, Finding> };
    };
    const [listenPort, buildPort] = (await freePorts(2)) as [number, number];

    // Arranged: a fresh data dir and two free ports — these checks pass.
    const fresh = await doctor(join(work, "doctor-fresh"), `127.0.0.1:${listenPort}`, `127.0.0.1:${buildPort}`);
    for (const check of ["port:server.listen", "port:server.build_listen", "data-dir", "master-key"])
      expect(fresh.by[check]!.status).toBe("ok");

    // Arranged: the API port held by this test, and a master key other users can read.
    const broken = join(work, "doctor-broken");
    mkdirSync(broken, { mode: 0o700 });
    writeFileSync(join(broken, "master.key"), "x".repeat(64), { mode: 0o644 });
    chmodSync(join(broken, "master.key"), 0o644);
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(listenPort, "127.0.0.1", resolve));
    try {
      const r = await doctor(broken, `127.0.0.1:${listenPort}`, `127.0.0.1:${buildPort}`);
      expect(r.by["port:server.listen"]).toMatchObject({
        status: "fail",
        message: expect.stringContaining("already in use"),
      });
      expect(r.by["port:server.build_listen"]!.status).toBe("ok");
      expect(r.by["master-key"]).toMatchObject({
        status: "fail",
        message: expect.stringContaining("readable by other users"),
      });
      expect(r.code).toBe(1);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
