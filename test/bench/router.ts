/**
 * @module test/bench/router
 * The build endpoint's own cost: src/router (mTLS, serial → lookup, registry, byte counting,
 * idle sweep) against a baseline that does only the unavoidable part — a minimal node:tls
 * server (same Bun, same server certificate, no client certificate, no lookup, no registry)
 * that opens the same unix socket and pipes with stream.pipe. Both run as a child process of
 * this one; the client and the unix-socket sink live here. So the ratio is "router vs the
 * cheapest TLS → unix proxy on this stack", i.e. the router's overhead, not TLS's. A raw
 * unix-socket figure (no TLS at all) is printed for scale only.
 *
 * Measured, 127.0.0.1 and unix sockets only:
 *   1. a --size MiB (1024) transfer client → server → sink, MB/s, best of --runs (3);
 *   2. connect latency: tls.connect → first byte echoed by the sink (TLS handshake + lookup +
 *      builder connect + one round trip), --connects (300) sequential connections, p50/p99;
 *   3. 200 concurrent connections through the router, each proven routed, held --hold s (2),
 *      then checked still open with no errors;
 *   4. buildEnded → closed: --ends (5) builds with 20 open connections each; the time from telling
 *      the router the build ended to the client seeing the last of them closed (the tests only
 *      check that they close; this is the figure).
 * A report: nothing here fails on timing; non-zero exit only if the bench cannot run.
 *
 * Usage: bun test/bench/router.ts [--json] [--size 1024] [--runs 3] [--connects 300] [--hold 2] [--ends 5]
 */
import { parseArgs } from "node:util";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { intOpt } from "./report.ts";

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    size: { type: "string", default: "1024" },
    runs: { type: "string", default: "3" },
    connects: { type: "string", default: "300" },
    hold: { type: "string", default: "2" },
    ends: { type: "string", default: "5" },
    concurrent: { type: "string", default: "200" },
    // Internal: run as the server child.
    serve: { type: "string" },
    dir: { type: "string" },
  },
});

const CHUNK = Buffer.alloc(256 * 1024, 0x5a);

// ---------------------------------------------------------------------------------------------
// Child: the server under test. Reads PEMs from --dir, prints "READY <port>" on stdout.

if (opts.serve) {
  const dir = opts.dir!;
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  const sink = join(dir, "sink.sock");
  let port: number;
  if (opts.serve === "router") {
    const { buildRouterFactory } = await import("../../src/router/index.ts");
    const { MetricsRegistry } = await import("../../src/metrics/registry.ts");
    const { silentLogger } = await import("../../src/log/logger.ts");
    const serials = new Set(read("serials.txt").split("\n").filter(Boolean));
    // "SERIAL BUILD" lines: the builds phase 4 ends, one each.
    const ending = new Map(
      read("ending.txt")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ") as [string, string]),
    );
    const router = buildRouterFactory({
      lookup: (serial) =>
        serials.has(serial)
          ? { buildId: "bench", projectId: "bench", platform: "linux/amd64", socketPath: sink, runtime: "buildkitd" }
          : ending.has(serial)
            ? {
                buildId: ending.get(serial)!,
                projectId: "bench",
                platform: "linux/amd64",
                socketPath: sink,
                runtime: "buildkitd",
              }
            : null,
      tls: {
        certPem: read("server-chain.pem"),
        keyPem: read("server-key.pem"),
        clientIntermediatesPem: read("intermediates.pem"),
        clientRootsPem: read("root.pem"),
      },
      limits: { maxConnectionsPerBuild: 1000, handshakeTimeoutMs: 10_000, idleTimeoutMs: 60_000 },
      logger: silentLogger,
      metrics: new MetricsRegistry(),
    });
    ({ port } = await router.listen({ hostname: "127.0.0.1", port: 0 }));
    // "end BUILD" on stdin: the router is told that build ended (phase 4).
    void (async () => {
      let buf = "";
      for await (const chunk of Bun.stdin.stream()) {
        buf += new TextDecoder().decode(chunk);
        for (let i: number; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) {
          const [cmd, build] = buf.slice(0, i).split(" ");
          if (cmd === "end" && build) router.buildEnded(build);
        }
      }
    })();
  } else {
    const server = tls.createServer(
      { cert: read("server-chain.pem"), key: read("server-key.pem"), minVersion: "TLSv1.2", ALPNProtocols: ["h2"] },
      (client) => {
        const builder = net.connect({ path: sink });
        client.pipe(builder).pipe(client);
        client.on("error", () => builder.destroy());
        builder.on("error", () => client.destroy());
        client.on("close", () => builder.destroy());
        builder.on("close", () => client.destroy());
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as net.AddressInfo).port;
  }
  process.stdout.write(`READY ${port}\n`);
  await new Promise(() => {});
}

// ---------------------------------------------------------------------------------------------
// Parent: pki, sink, client.

const SIZE = intOpt("size", opts.size, 1, 16384) * 1024 * 1024;
const RUNS = intOpt("runs", opts.runs, 1, 10);
const CONNECTS = intOpt("connects", opts.connects, 10, 5000);
const HOLD_MS = intOpt("hold", opts.hold, 0, 60) * 1000;
const ENDS = intOpt("ends", opts.ends, 1, 50);
const PER_END = 20;
const CONCURRENT = intOpt("concurrent", opts.concurrent, 1, 900);
const progress = (msg: string) => process.stderr.write(`[bench:router] ${msg}\n`);

const dir = mkdtempSync(join(tmpdir(), "slipway-bench-router-"));
const live = new Set<Subprocess>();
const cleanup = () => {
  for (const p of live) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
};
process.on("SIGINT", () => (cleanup(), process.exit(130)));
process.on("SIGTERM", () => (cleanup(), process.exit(143)));

/**
 * The sink stands in for a builder. Protocol per connection: an 8-byte big-endian length N,
 * then N bytes; the sink answers one byte "k" at once (so latency is one round trip) and one
 * byte "d" when all N arrived (so throughput is measured to the last byte landing).
 */
function startSink(path: string) {
  const state = { open: 0, maxOpen: 0, accepted: 0 };
  const server = net.createServer((s) => {
    state.open++;
    state.accepted++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    let header: Buffer | null = Buffer.alloc(0);
    let want = 0;
    let got = 0;
    s.on("data", (d: Buffer) => {
      if (header) {
        header = Buffer.concat([header, d]);
        if (header.length < 8) return;
        want = Number(header.readBigUInt64BE(0));
        got = header.length - 8;
        header = null;
        s.write("k");
      } else got += d.length;
      if (want > 0 && got >= want) {
        want = 0;
        s.write("d");
      }
    });
    s.on("error", () => {});
    s.on("close", () => state.open--);
  });
  return new Promise<{ state: typeof state; close: () => void }>((r) =>
    server.listen(path, () => r({ state, close: () => server.close() })),
  );
}

async function startServer(
  kind: "router" | "baseline",
): Promise<{ port: number; proc: Subprocess<"pipe", "pipe", "inherit"> }> {
  const proc = Bun.spawn([process.execPath, import.meta.path, "--serve", kind, "--dir", dir], {
    stdout: "pipe",
    stderr: "inherit",
    stdin: "pipe",
  });
  live.add(proc);
  const reader = proc.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 20_000;
  while (!/READY \d+\n/.test(text)) {
    if (Date.now() > deadline) throw new Error(`${kind} server did not start`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`${kind} server exited before READY`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { port: Number(/READY (\d+)/.exec(text)![1]), proc };
}

interface Creds {
  ca: string;
  cert: string;
  key: string;
}

/** A connection to the server (or, with `unix`, straight to the sink), header sent. */
function connect(
  target: { port: number } | { unix: string },
  creds: Creds,
  length: number,
): Promise<{ s: net.Socket; ackMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(length));
    const s: net.Socket =
      "unix" in target
        ? net.connect({ path: target.unix }, () => s.write(header))
        : tls.connect(
            {
              host: "127.0.0.1",
              port: target.port,
              servername: "localhost",
              ca: creds.ca,
              cert: creds.cert,
              key: creds.key,
              ALPNProtocols: ["h2"],
            },
            () => s.write(header),
          );
    const onData = (d: Buffer) => {
      if (d[0] !== 0x6b) return reject(new Error(`unexpected first byte ${d[0]}`));
      s.off("data", onData);
      s.off("close", onClose);
      resolve({ s, ackMs: performance.now() - t0 });
    };
    const onClose = () => reject(new Error("closed before the sink answered"));
    s.on("data", onData);
    s.on("error", reject);
    s.on("close", onClose);
  });
}

async function transfer(target: { port: number } | { unix: string }, creds: Creds): Promise<number> {
  const { s } = await connect(target, creds, SIZE);
  const done = new Promise<void>((resolve, reject) => {
    s.on("data", (d: Buffer) => d.includes(0x64) && resolve());
    s.on("close", () => reject(new Error("closed mid-transfer")));
  });
  const t0 = performance.now();
  let sent = 0;
  while (sent < SIZE) {
    const n = Math.min(CHUNK.length, SIZE - sent);
    sent += n;
    if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) await new Promise((r) => s.once("drain", r));
  }
  await done;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return SIZE / secs / 1e6;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function latency(port: number, creds: Creds): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 20; i++) (await connect({ port }, creds, 0)).s.destroy();
  const xs: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const { s, ackMs } = await connect({ port }, creds, 0);
    xs.push(ackMs);
    s.destroy();
  }
  return { p50: pct(xs, 50), p99: pct(xs, 99) };
}

async function main() {
  const t0 = performance.now();
  // Real certificates from the real pki, on a throwaway database.
  const { applyMigrations, openDatabase } = await import("../../src/db/index.ts");
  const { createSealer } = await import("../../src/secrets/index.ts");
  const { pkiServiceFactory } = await import("../../src/pki/index.ts");
  const db = openDatabase(join(dir, "pki.db"));
  applyMigrations(db);
  const pki = pkiServiceFactory({
    db,
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    applianceId: "bench",
  });
  await pki.ensureHierarchy(["server", "build-client"]);
  const server = await pki.issueLeaf({
    issuer: "server",
    usage: "server",
    commonName: "localhost",
    names: { dns: ["localhost"], ip: ["127.0.0.1"] },
    lifetimeMs: 3_600_000,
    requester: "bench",
  });
  const client = await pki.issueLeaf({
    issuer: "build-client",
    usage: "client",
    commonName: "bench",
    names: { uri: ["slipway://bench/build/bench"] },
    lifetimeMs: 3_600_000,
    requester: "bench",
  });
  const intermediates = (
    db.query("SELECT cert_pem FROM certificate_authorities WHERE purpose = 'build-client'").all() as {
      cert_pem: string;
    }[]
  ).map((r) => r.cert_pem);
  const root = pki.rootCertificatePem();
  const enders: { build: string; serial: string; creds: Creds }[] = [];
  for (let i = 0; i < ENDS; i++) {
    const leaf = await pki.issueLeaf({
      issuer: "build-client",
      usage: "client",
      commonName: `end-${i}`,
      names: { uri: [`slipway://bench/build/end-${i}`] },
      lifetimeMs: 3_600_000,
      requester: "bench",
    });
    enders.push({ build: `end-${i}`, serial: leaf.serial, creds: { ca: root, cert: leaf.certPem, key: leaf.keyPem } });
  }
  db.close();
  writeFileSync(join(dir, "server-chain.pem"), server.chainPem);
  writeFileSync(join(dir, "server-key.pem"), server.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, "intermediates.pem"), intermediates.join("\n"));
  writeFileSync(join(dir, "root.pem"), root);
  writeFileSync(join(dir, "serials.txt"), `${client.serial}\n`);
  writeFileSync(join(dir, "ending.txt"), enders.map((e) => `${e.serial} ${e.build}\n`).join(""));
  const creds: Creds = { ca: root, cert: client.certPem, key: client.keyPem };

  const sink = await startSink(join(dir, "sink.sock"));
  const servers = { router: await startServer("router"), baseline: await startServer("baseline") };
  progress(`router on :${servers.router.port}, baseline on :${servers.baseline.port}`);

  // Warm both (JIT, TLS session machinery) before timing.
  for (const k of ["router", "baseline"] as const) (await connect({ port: servers[k].port }, creds, 0)).s.destroy();

  const mbps = { router: [] as number[], baseline: [] as number[], raw: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    for (const k of ["baseline", "router"] as const) {
      const v = await transfer({ port: servers[k].port }, creds);
      mbps[k].push(v);
      progress(`transfer ${i + 1}/${RUNS} ${k.padEnd(8)} ${v.toFixed(0)} MB/s`);
    }
  }
  mbps.raw.push(await transfer({ unix: join(dir, "sink.sock") }, creds));
  progress(`transfer raw unix socket ${mbps.raw[0]!.toFixed(0)} MB/s`);

  const lat = {
    baseline: await latency(servers.baseline.port, creds),
    router: await latency(servers.router.port, creds),
  };
  progress(`connect latency p50 router ${lat.router.p50.toFixed(2)} ms, baseline ${lat.baseline.p50.toFixed(2)} ms`);

  // 200 concurrent connections, each proven routed by the sink's answer, then held.
  let errors = 0;
  const sinkBefore = sink.state.accepted;
  const settled = await Promise.allSettled(
    Array.from({ length: CONCURRENT }, () => connect({ port: servers.router.port }, creds, 1)),
  );
  const held = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value.s] : []));
  errors += settled.length - held.length;
  for (const s of held) s.on("error", () => errors++);
  const atSink = sink.state.accepted - sinkBefore;
  await Bun.sleep(HOLD_MS);
  const stillOpen = held.filter((s) => !s.destroyed && s.readyState === "open").length;
  for (const s of held) s.destroy();
  progress(
    `${CONCURRENT} concurrent: ${held.length} routed, ${atSink} accepted by the sink, ${stillOpen} still open after ${HOLD_MS} ms, ${errors} errors`,
  );

  // buildEnded → the client sees every connection of that build closed.
  const endMs: number[] = [];
  for (const e of enders) {
    const open = await Promise.all(
      Array.from({ length: PER_END }, () => connect({ port: servers.router.port }, e.creds, 1)),
    );
    const closed = Promise.all(
      open.map(
        ({ s }) =>
          new Promise<void>((r) => (s.destroyed ? r() : (s.on("error", () => {}), s.once("close", () => r())))),
      ),
    );
    const t1 = performance.now();
    servers.router.proc.stdin.write(`end ${e.build}\n`);
    servers.router.proc.stdin.flush();
    await closed;
    endMs.push(performance.now() - t1);
  }
  progress(`buildEnded → ${PER_END} connections closed: ${endMs.map((x) => x.toFixed(1)).join(" ")} ms`);

  const best = (xs: number[]) => Math.max(...xs);
  const result = {
    environment: { bun: Bun.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? "?" },
    sizeMiB: SIZE / 1024 / 1024,
    throughputMBps: { router: best(mbps.router), baseline: best(mbps.baseline), rawUnix: best(mbps.raw), runs: mbps },
    throughputRatio: best(mbps.router) / best(mbps.baseline),
    connectMs: {
      router: lat.router,
      baseline: lat.baseline,
      addedP50: lat.router.p50 - lat.baseline.p50,
      addedP99: lat.router.p99 - lat.baseline.p99,
    },
    concurrent: {
      wanted: CONCURRENT,
      routed: held.length,
      acceptedBySink: atSink,
      stillOpenAfterHold: stillOpen,
      holdMs: HOLD_MS,
      errors,
    },
    buildEndedClosedMs: { connections: PER_END, builds: ENDS, p50: pct(endMs, 50), max: Math.max(...endMs) },
    totalSeconds: (performance.now() - t0) / 1000,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }

  const f = (x: number, d: number, u: string) => `${x.toFixed(d)} ${u}`;
  const ok = (met: boolean) => (met ? "ok" : "MISSED");
  const signed = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)} ms`;
  const table = [
    ["metric", "router", "baseline", "ratio", "target"],
    [
      `${result.sizeMiB} MiB transfer (best of ${RUNS})`,
      f(result.throughputMBps.router, 0, "MB/s"),
      f(result.throughputMBps.baseline, 0, "MB/s"),
      `${(result.throughputRatio * 100).toFixed(0)} %`,
      `≥ 80 %  ${ok(result.throughputRatio >= 0.8)}`,
    ],
    [
      "connect → first byte back (p50)",
      f(lat.router.p50, 2, "ms"),
      f(lat.baseline.p50, 2, "ms"),
      signed(result.connectMs.addedP50),
      `≤ +2 ms  ${ok(result.connectMs.addedP50 <= 2)}`,
    ],
    [
      "connect → first byte back (p99)",
      f(lat.router.p99, 2, "ms"),
      f(lat.baseline.p99, 2, "ms"),
      signed(result.connectMs.addedP99),
      `≤ +2 ms  ${ok(result.connectMs.addedP99 <= 2)}`,
    ],
    [
      `${CONCURRENT} concurrent connections held ${HOLD_MS / 1000} s`,
      `${stillOpen} open, ${errors} errors`,
      "",
      "",
      `${CONCURRENT}, 0 errors  ${ok(stillOpen === CONCURRENT && errors === 0)}`,
    ],
    [
      `buildEnded → ${PER_END} connections closed (p50, max of ${ENDS})`,
      `${f(result.buildEndedClosedMs.p50, 1, "ms")}, ${f(result.buildEndedClosedMs.max, 1, "ms")}`,
      "",
      "",
      `< 1 s  ${ok(result.buildEndedClosedMs.max < 1000)}`,
    ],
  ];
  const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => [...(r[c] ?? "")].length)));
  const lines = table.map((r) =>
    r
      .map((cell, c) => (c >= 1 && c <= 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join("   ")
      .trimEnd(),
  );
  process.stdout.write(
    `${[
      `slipway router bench: bun ${result.environment.bun}, ${result.environment.cpus} × ${result.environment.cpu}`,
      "",
      ...lines,
      "",
      "baseline = a minimal node:tls server (same Bun, same certificate, no client certificate, no lookup/registry) piping to the same unix-socket sink;",
      "router and baseline each run in a child process; client and sink share this process. 127.0.0.1 and unix sockets only.",
      `for scale: the same transfer straight into the unix socket, no TLS: ${result.throughputMBps.rawUnix.toFixed(0)} MB/s`,
      `raw transfer MB/s  router: ${mbps.router.map((x) => x.toFixed(0)).join(" ")}   baseline: ${mbps.baseline.map((x) => x.toFixed(0)).join(" ")}`,
      `connect latency: ${CONNECTS} sequential connections each (after 20 warm-up), tls.connect → the sink's first byte (handshake + routing + builder connect + 1 round trip)`,
      `total bench time ${result.totalSeconds.toFixed(1)} s`,
    ].join("\n")}\n`,
  );
}

try {
  await main();
} catch (e) {
  progress(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
} finally {
  cleanup();
  process.exit();
}
