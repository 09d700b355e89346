/**
 * @module test/bench/router
 * The build endpoint's own cost, in wall time and in CPU per MB, against the cost floor of mTLS
 * measured in the same run. Each server runs as a child process of this one (its CPU is read
 * from /proc/<pid>/stat); the client and the unix-socket sink standing in for a builder live here.
 *
 * Servers (--kinds, default all):
 *   mtls-node    the baseline: a minimal node:tls server with client-certificate verification
 *                (same roots and intermediates as the router) piping with stream.pipe to the
 *                same unix sink — the cheapest "mTLS → unix socket" on node:tls;
 *   mtls-bun     the same on Bun.listen / Bun.connect with socket handlers (manual writes with
 *                backpressure) — the cheapest on Bun's native sockets;
 *   router       src/router as `serve` wires it, with the gRPC status tap;
 *   router-notap src/router without the tap (what the tap costs);
 *   router-alloc-default  the router without the environment of the packaged slipway.service
 *                (its allocator setting), which every other server here runs with: the router as
 *                it ran before that setting;
 *   router-before (only with --before-src DIR) the router of another checkout's src/ (e.g. the
 *                commit before a change, from `git worktree add`), with the tap and with the
 *                environment of that checkout's own slipway.service: before/after in one run;
 *   passthrough  "the builder terminates TLS": a TCP → unix relay in front of a sink that does
 *                the mTLS itself, so the relay does no crypto (for scale; see the note printed).
 * The traffic is HTTP/2-shaped (preface, SETTINGS, HEADERS of a Solve call, 16 KiB DATA frames)
 * so the tap parses what it parses in production.
 *
 * Measured, 127.0.0.1 and unix sockets only:
 *   1. --size MiB (256) uploaded (client → sink) and exported (sink → client) through each
 *      server, --runs (5) interleaved runs: median MB/s and the server's CPU ms per MB;
 *   2. connect latency: tls.connect → the sink's first answer, --connects (300), p50/p99,
 *      router vs the baseline;
 *   3. --concurrent (200) connections through the router, each proven routed, held --hold s (2);
 *   4. buildEnded → closed: --ends (5) builds with 20 open connections each.
 * A report: nothing here fails on timing; non-zero exit only if the bench cannot run.
 *
 * Usage: bun test/bench/router.ts [--json] [--size 256] [--runs 5] [--kinds a,b] [--before-src DIR] [--connects 300]
 *        [--hold 2] [--ends 5] [--concurrent 200]
 */
import { parseArgs } from "node:util";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { unitEnvironment } from "../support/unit-env.ts";
import { intOpt } from "./report.ts";

const KINDS = [
  "mtls-node",
  "mtls-bun",
  "router",
  "router-notap",
  "router-alloc-default",
  "passthrough",
  "router-before",
] as const;
type Kind = (typeof KINDS)[number];

const { values: opts } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    json: { type: "boolean", default: false },
    size: { type: "string", default: "256" },
    runs: { type: "string", default: "5" },
    kinds: { type: "string", default: KINDS.join(",") },
    connects: { type: "string", default: "300" },
    hold: { type: "string", default: "2" },
    ends: { type: "string", default: "5" },
    concurrent: { type: "string", default: "200" },
    "before-src": { type: "string" },
    // Internal: run as the server child.
    serve: { type: "string" },
    dir: { type: "string" },
  },
});

// ---------------------------------------------------------------------------------------------
// The wire: HTTP/2-shaped, so the status tap does its real work.

const FRAME_PAYLOAD = 16 * 1024;
const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
/** HPACK "literal header field without indexing, new name", no Huffman: short strings only. */
const hpack = (headers: [string, string][]) =>
  Buffer.concat(
    headers.map(([n, v]) =>
      Buffer.concat([Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)]),
    ),
  );
/** Preface, SETTINGS, HEADERS of a Solve call on stream 1: what opens every bench connection. */
const PREFIX = Buffer.concat([
  Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
  frame(0x4, 0, 0, Buffer.alloc(0)),
  frame(
    0x1,
    0x4,
    1,
    hpack([
      [":method", "POST"],
      [":scheme", "http"],
      [":authority", "bench"],
      [":path", "/moby.buildkit.v1.Control/Solve"],
      ["content-type", "application/grpc"],
    ]),
  ),
]);
/** An extension frame (ignored by HTTP/2 peers) telling the sink what to do: 'u'/'e' + 8-byte N. */
const CONTROL_TYPE = 0xbe;
const CONTROL_LEN = 9 + 9;
/** The sink's answers: ACK at once (flags 0), DONE when an upload fully arrived (flags 1). */
const ANSWER_TYPE = 0xbf;
const answer = (flags: number) => frame(ANSWER_TYPE, flags, 0, Buffer.alloc(0));
/** 16 DATA frames on stream 1: the unit both directions send. */
const BLOCK = Buffer.concat(Array.from({ length: 16 }, () => frame(0x0, 0, 1, Buffer.alloc(FRAME_PAYLOAD, 0x5a))));

// ---------------------------------------------------------------------------------------------
// Child: the server under test. Reads PEMs from --dir, prints "READY <port>" on stdout.

if (opts.serve) {
  const dir = opts.dir!;
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  const sink = join(dir, "sink.sock");
  const kind = opts.serve as Kind;
  const clientCa = [read("root.pem"), read("intermediates.pem")];
  let port: number;
  if (kind === "router" || kind === "router-notap" || kind === "router-alloc-default" || kind === "router-before") {
    const src = kind === "router-before" ? opts["before-src"]! : join(import.meta.dir, "../../src");
    const { buildRouterFactory, grpcResponseTap, BUILDKIT_STATUS_PATH } = (await import(
      join(src, "router/index.ts")
    )) as typeof import("../../src/router/index.ts");
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
    const target = (buildId: string) => ({
      buildId,
      projectId: "bench",
      platform: "linux/amd64",
      socketPath: sink,
      runtime: "buildkitd" as const,
    });
    const watched = new Set([BUILDKIT_STATUS_PATH]);
    const router = buildRouterFactory({
      lookup: (serial) =>
        serials.has(serial) ? target("bench") : ending.has(serial) ? target(ending.get(serial)!) : null,
      observe: kind !== "router-notap" ? () => grpcResponseTap(watched, () => {}) : undefined,
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
  } else if (kind === "mtls-node" || kind === "passthrough") {
    const relay = (client: net.Socket, to: string) => {
      const builder = net.connect({ path: to });
      client.pipe(builder).pipe(client);
      client.on("error", () => builder.destroy());
      builder.on("error", () => client.destroy());
      client.on("close", () => builder.destroy());
      builder.on("close", () => client.destroy());
    };
    const server =
      kind === "mtls-node"
        ? tls.createServer(
            {
              cert: read("server-chain.pem"),
              key: read("server-key.pem"),
              ca: clientCa,
              requestCert: true,
              rejectUnauthorized: true,
              minVersion: "TLSv1.2",
              ALPNProtocols: ["h2"],
            },
            (c) => relay(c, sink),
          )
        : net.createServer((c) => relay(c, join(dir, "tls-sink.sock")));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as net.AddressInfo).port;
  } else {
    // mtls-bun: Bun's native sockets, handlers, writes with backpressure.
    type Side = {
      peer: Bun.Socket<Side> | null;
      queue: Uint8Array[];
      other: Bun.Socket<Side> | null;
      early: Uint8Array[];
    };
    const write = (to: Bun.Socket<Side> | null, from: Bun.Socket<Side>, chunk: Uint8Array) => {
      if (!to) return void from.data.early.push(Buffer.from(chunk)); // before the builder is connected
      if (to.data.queue.length > 0) return void to.data.queue.push(chunk);
      const n = to.write(chunk);
      if (n < chunk.length) {
        to.data.queue.push(chunk.subarray(n));
        from.pause();
      }
    };
    const drain = (s: Bun.Socket<Side>) => {
      while (s.data.queue.length > 0) {
        const c = s.data.queue[0]!;
        const n = s.write(c);
        if (n < c.length) return void (s.data.queue[0] = c.subarray(n));
        s.data.queue.shift();
      }
      s.data.other?.resume();
    };
    const server = Bun.listen<Side>({
      hostname: "127.0.0.1",
      port: 0,
      tls: {
        cert: read("server-chain.pem"),
        key: read("server-key.pem"),
        ca: clientCa,
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: Buffer.from("\x02h2", "latin1"),
      } as Bun.TLSOptions,
      socket: {
        open(client) {
          client.data = { peer: null, queue: [], other: null, early: [] };
        },
        handshake(client, ok) {
          if (!ok || !client.authorized) return void client.end();
          void Bun.connect<Side>({
            unix: sink,
            data: { peer: client, queue: [], other: client, early: [] },
            socket: {
              data: (b, chunk) => write(b.data.peer!, b, chunk),
              drain,
              close: (b) => void b.data.peer?.end(),
              error: (b) => void b.data.peer?.end(),
            },
          }).then((b) => {
            client.data.peer = b;
            client.data.other = b;
            for (const c of client.data.early.splice(0)) write(b, client, c);
          });
        },
        data: (c, chunk) => write(c.data.peer, c, chunk),
        drain,
        close: (c) => void c.data.peer?.end(),
        error: (c) => void c.data.peer?.end(),
      },
    });
    port = server.port;
  }
  process.stdout.write(`READY ${port}\n`);
  await new Promise(() => {});
}

// ---------------------------------------------------------------------------------------------
// Parent: pki, sinks, client.

const SIZE_BLOCKS = Math.max(1, Math.round((intOpt("size", opts.size, 1, 16384) * 1024 * 1024) / BLOCK.length));
const SIZE = SIZE_BLOCKS * BLOCK.length;
const RUNS = intOpt("runs", opts.runs, 1, 15);
const CONNECTS = intOpt("connects", opts.connects, 10, 5000);
const HOLD_MS = intOpt("hold", opts.hold, 0, 60) * 1000;
const ENDS = intOpt("ends", opts.ends, 1, 50);
const PER_END = 20;
const CONCURRENT = intOpt("concurrent", opts.concurrent, 1, 900);
const kinds = opts.kinds.split(",").filter((k) => k && (k !== "router-before" || opts["before-src"])) as Kind[];
if (opts["before-src"] && !kinds.includes("router-before")) kinds.push("router-before");
for (const k of kinds)
  if (!KINDS.includes(k)) {
    console.error(`--kinds: unknown ${k} (known: ${KINDS.join(", ")})`);
    process.exit(2);
  }
if (!kinds.includes("mtls-node")) kinds.unshift("mtls-node"); // the baseline is always measured
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
 * The sink stands in for a builder. Per connection: it skips PREFIX, reads the control frame,
 * answers ACK at once (so latency is one round trip), then either counts N uploaded bytes and
 * answers DONE, or sends N bytes of DATA frames (export).
 */
function sinkHandler(state: { open: number; accepted: number }) {
  return (s: net.Socket) => {
    state.open++;
    state.accepted++;
    let head: Buffer | null = Buffer.alloc(0);
    let want = 0;
    let got = 0;
    s.on("data", (d: Buffer) => {
      if (head) {
        head = Buffer.concat([head, d]);
        if (head.length < PREFIX.length + CONTROL_LEN) return;
        const ctl = head.subarray(PREFIX.length + 9);
        const mode = String.fromCharCode(ctl[0]!);
        want = Number(ctl.readBigUInt64BE(1));
        got = head.length - PREFIX.length - CONTROL_LEN;
        head = null;
        s.write(answer(0));
        if (mode === "e") void sendBlocks(s, want / BLOCK.length);
      } else got += d.length;
      if (want > 0 && got >= want) {
        want = 0;
        s.write(answer(1));
      }
    });
    s.on("error", () => {});
    s.on("close", () => state.open--);
  };
}

async function sendBlocks(s: net.Socket, blocks: number) {
  for (let i = 0; i < blocks && !s.destroyed; i++) if (!s.write(BLOCK)) await new Promise((r) => s.once("drain", r));
}

async function startSinks(creds: { cert: string; key: string; ca: string[] }) {
  const state = { open: 0, accepted: 0 };
  const plain = net.createServer(sinkHandler(state));
  // For "passthrough": the sink terminates the mTLS itself (as a builder with per-build trust would).
  const withTls = tls.createServer(
    {
      cert: creds.cert,
      key: creds.key,
      ca: creds.ca,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
    },
    sinkHandler(state),
  );
  await new Promise<void>((r) => plain.listen(join(dir, "sink.sock"), () => r()));
  await new Promise<void>((r) => withTls.listen(join(dir, "tls-sink.sock"), () => r()));
  return { state, close: () => (plain.close(), withTls.close()) };
}

async function startServer(kind: Kind): Promise<{ port: number; proc: Subprocess<"pipe", "pipe", "inherit"> }> {
  const before = opts["before-src"] ? ["--before-src", opts["before-src"]] : [];
  // Every server runs with the environment the packaged unit gives serve, but the one row kept to
  // show the router without it, and the other checkout's router, which runs with its own unit's.
  const unit =
    kind === "router-alloc-default"
      ? {}
      : kind === "router-before"
        ? unitEnvironment(join(opts["before-src"]!, "..", "packaging", "systemd", "slipway.service"))
        : unitEnvironment();
  const env = { ...process.env, ...unit };
  const proc = Bun.spawn([process.execPath, import.meta.path, "--serve", kind, "--dir", dir, ...before], {
    env,
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

/** CPU seconds (user + system) a process has used so far, from /proc. */
const CLK_TCK = 100;
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

interface Creds {
  ca: string;
  cert: string;
  key: string;
}

/** A connection through the server on `port`, opened and acknowledged by the sink. */
function connect(
  port: number,
  creds: Creds,
  mode: "u" | "e",
  length: number,
): Promise<{ s: net.Socket; ackMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const ctl = Buffer.alloc(9);
    ctl[0] = mode.charCodeAt(0);
    ctl.writeBigUInt64BE(BigInt(length), 1);
    const s = tls.connect(
      {
        host: "127.0.0.1",
        port,
        servername: "localhost",
        ca: creds.ca,
        cert: creds.cert,
        key: creds.key,
        ALPNProtocols: ["h2"],
      },
      () => s.write(Buffer.concat([PREFIX, frame(CONTROL_TYPE, 0, 0, ctl)])),
    );
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < 9) return;
      if (got[3] !== ANSWER_TYPE) return reject(new Error(`unexpected first frame type ${got[3]}`));
      s.off("data", onData);
      s.off("close", onClose);
      // Paused until the caller listens: bytes behind the answer (an export) are not dropped.
      s.pause();
      if (got.length > 9) s.unshift(got.subarray(9));
      resolve({ s, ackMs: performance.now() - t0 });
    };
    const onClose = () => reject(new Error("closed before the sink answered"));
    s.on("data", onData);
    s.on("error", reject);
    s.on("close", onClose);
  });
}

async function upload(port: number, creds: Creds): Promise<number> {
  const { s } = await connect(port, creds, "u", SIZE);
  const done = new Promise<void>((resolve, reject) => {
    s.on("data", (d: Buffer) => d.length >= 9 && d[3] === ANSWER_TYPE && resolve());
    s.on("close", () => reject(new Error("closed mid-upload")));
    s.resume();
  });
  const t0 = performance.now();
  for (let i = 0; i < SIZE_BLOCKS; i++) if (!s.write(BLOCK)) await new Promise((r) => s.once("drain", r));
  await done;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return secs;
}

async function exportBytes(port: number, creds: Creds): Promise<number> {
  const t0 = performance.now();
  const { s } = await connect(port, creds, "e", SIZE);
  await new Promise<void>((resolve, reject) => {
    let got = 0;
    s.on("data", (d: Buffer) => {
      got += d.length;
      if (got >= SIZE) resolve();
    });
    s.on("close", () => reject(new Error(`closed mid-export at ${got} bytes`)));
    s.resume();
  });
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return secs;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

async function latency(port: number, creds: Creds): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 20; i++) (await connect(port, creds, "u", 0)).s.destroy();
  const xs: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const { s, ackMs } = await connect(port, creds, "u", 0);
    xs.push(ackMs);
    s.destroy();
  }
  return { p50: pct(xs, 50), p99: pct(xs, 99) };
}

interface Figures {
  uploadMBps: number;
  uploadCpuMsPerMB: number;
  exportMBps: number;
  exportCpuMsPerMB: number;
  runs: { upload: number[]; uploadCpu: number[]; export: number[]; exportCpu: number[] };
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

  const sink = await startSinks({ cert: server.chainPem, key: server.keyPem, ca: [root, ...intermediates] });
  const servers = {} as Record<Kind, { port: number; proc: Subprocess<"pipe", "pipe", "inherit"> }>;
  for (const k of kinds) servers[k] = await startServer(k);
  const hasRouter = kinds.includes("router");
  progress(
    `servers: ${kinds.map((k) => `${k} :${servers[k].port}`).join(", ")}; ${(SIZE / 1e6).toFixed(0)} MB per transfer`,
  );

  // Warm every server (JIT, TLS machinery) before timing.
  for (const k of kinds) {
    (await connect(servers[k].port, creds, "u", 0)).s.destroy();
    await exportBytes(servers[k].port, creds);
  }

  const figures = {} as Record<Kind, Figures>;
  for (const k of kinds)
    figures[k] = {
      uploadMBps: 0,
      uploadCpuMsPerMB: 0,
      exportMBps: 0,
      exportCpuMsPerMB: 0,
      runs: { upload: [], uploadCpu: [], export: [], exportCpu: [] },
    };
  const MB = SIZE / 1e6;
  for (let i = 0; i < RUNS; i++) {
    // Interleaved, the order rotated each run, so load drifts on this machine hit all alike.
    const order = kinds.map((_, j) => kinds[(i + j) % kinds.length]!);
    for (const k of order) {
      const { proc, port } = servers[k];
      const r = figures[k].runs;
      let c0 = cpuSeconds(proc.pid);
      const up = await upload(port, creds);
      r.upload.push(MB / up);
      r.uploadCpu.push(((cpuSeconds(proc.pid) - c0) * 1000) / MB);
      c0 = cpuSeconds(proc.pid);
      const ex = await exportBytes(port, creds);
      r.export.push(MB / ex);
      r.exportCpu.push(((cpuSeconds(proc.pid) - c0) * 1000) / MB);
      progress(
        `run ${i + 1}/${RUNS} ${k.padEnd(12)} upload ${(MB / up).toFixed(0)} MB/s ${r.uploadCpu.at(-1)!.toFixed(2)} ms/MB, export ${(MB / ex).toFixed(0)} MB/s ${r.exportCpu.at(-1)!.toFixed(2)} ms/MB`,
      );
    }
  }
  for (const k of kinds) {
    const f = figures[k];
    f.uploadMBps = median(f.runs.upload);
    f.uploadCpuMsPerMB = median(f.runs.uploadCpu);
    f.exportMBps = median(f.runs.export);
    f.exportCpuMsPerMB = median(f.runs.exportCpu);
  }

  let lat: { router: { p50: number; p99: number }; baseline: { p50: number; p99: number } } | null = null;
  let concurrent: { routed: number; acceptedBySink: number; stillOpen: number; errors: number } | null = null;
  const endMs: number[] = [];
  if (hasRouter) {
    const port = servers.router.port;
    lat = { baseline: await latency(servers["mtls-node"].port, creds), router: await latency(port, creds) };
    progress(`connect latency p50 router ${lat.router.p50.toFixed(2)} ms, baseline ${lat.baseline.p50.toFixed(2)} ms`);

    // Concurrent connections, each proven routed by the sink's answer, then held.
    let errors = 0;
    const sinkBefore = sink.state.accepted;
    const settled = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => connect(port, creds, "u", 1)));
    const held = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value.s] : []));
    errors += settled.length - held.length;
    for (const s of held) s.on("error", () => errors++);
    const atSink = sink.state.accepted - sinkBefore;
    await Bun.sleep(HOLD_MS);
    const stillOpen = held.filter((s) => !s.destroyed && s.readyState === "open").length;
    for (const s of held) s.destroy();
    concurrent = { routed: held.length, acceptedBySink: atSink, stillOpen, errors };
    progress(
      `${CONCURRENT} concurrent: ${held.length} routed, ${atSink} at the sink, ${stillOpen} still open, ${errors} errors`,
    );

    // buildEnded → the client sees every connection of that build closed.
    for (const e of enders) {
      const open = await Promise.all(Array.from({ length: PER_END }, () => connect(port, e.creds, "u", 1)));
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
  }
  sink.close();

  const base = figures["mtls-node"];
  const result = {
    environment: {
      bun: Bun.version,
      cpus: cpus().length,
      cpu: cpus()[0]?.model ?? "?",
      loadavg: readFileSync("/proc/loadavg", "utf8").trim(),
    },
    transferMB: MB,
    runs: RUNS,
    figures,
    ratios: Object.fromEntries(
      kinds.map((k) => [
        k,
        {
          uploadTime: base.uploadMBps / figures[k].uploadMBps,
          exportTime: base.exportMBps / figures[k].exportMBps,
          uploadCpu: figures[k].uploadCpuMsPerMB / base.uploadCpuMsPerMB,
          exportCpu: figures[k].exportCpuMsPerMB / base.exportCpuMsPerMB,
        },
      ]),
    ),
    connectMs: lat,
    concurrent: concurrent && { wanted: CONCURRENT, holdMs: HOLD_MS, ...concurrent },
    buildEndedClosedMs: endMs.length
      ? { connections: PER_END, builds: ENDS, p50: pct(endMs, 50), max: Math.max(...endMs) }
      : null,
    totalSeconds: (performance.now() - t0) / 1000,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }

  const pctOf = (x: number) => `${x >= 1 ? "+" : "−"}${Math.abs((x - 1) * 100).toFixed(0)} %`;
  const rows = [["server", "upload MB/s", "time vs base", "CPU ms/MB", "export MB/s", "time vs base", "CPU ms/MB"]];
  for (const k of kinds) {
    const f = figures[k];
    const r = result.ratios[k]!;
    rows.push([
      k === "mtls-node" ? `${k} (baseline)` : k,
      f.uploadMBps.toFixed(0),
      k === "mtls-node" ? "" : pctOf(r.uploadTime),
      f.uploadCpuMsPerMB.toFixed(2),
      f.exportMBps.toFixed(0),
      k === "mtls-node" ? "" : pctOf(r.exportTime),
      f.exportCpuMsPerMB.toFixed(2),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? "")].length)));
  const lines = rows.map((r) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("   "),
  );
  const ok = (met: boolean) => (met ? "ok" : "MISSED");
  const out = [
    `slipway router bench: bun ${result.environment.bun}, ${result.environment.cpus} × ${result.environment.cpu}, load ${result.environment.loadavg}`,
    `${MB.toFixed(0)} MB each way, median of ${RUNS} interleaved runs; CPU = the server process's user+system time (/proc/<pid>/stat)`,
    "",
    ...lines,
    "",
  ];
  if (hasRouter) {
    const r = result.ratios.router!;
    out.push(
      `router vs baseline: upload time ${pctOf(r.uploadTime)} (target ≤ +5 %  ${ok(r.uploadTime <= 1.05)}), export time ${pctOf(r.exportTime)} (≤ +5 %  ${ok(r.exportTime <= 1.05)})`,
      `router CPU: upload ${figures.router.uploadCpuMsPerMB.toFixed(2)} ms/MB, export ${figures.router.exportCpuMsPerMB.toFixed(2)} ms/MB (target ≤ 1.6 ms/MB, half of the 3.2 measured before)`,
      `connect → first answer p50 router ${lat!.router.p50.toFixed(2)} ms vs baseline ${lat!.baseline.p50.toFixed(2)} ms; p99 ${lat!.router.p99.toFixed(2)} vs ${lat!.baseline.p99.toFixed(2)} ms`,
      `${CONCURRENT} concurrent connections held ${HOLD_MS / 1000} s: ${concurrent!.stillOpen} open, ${concurrent!.errors} errors  ${ok(concurrent!.stillOpen === CONCURRENT && concurrent!.errors === 0)}`,
      `buildEnded → ${PER_END} connections closed: p50 ${result.buildEndedClosedMs!.p50.toFixed(1)} ms, max ${result.buildEndedClosedMs!.max.toFixed(1)} ms (< 1 s  ${ok(result.buildEndedClosedMs!.max < 1000)})`,
      "",
    );
  }
  out.push(
    "baseline = a minimal node:tls server verifying client certificates (same trust as the router), stream.pipe to the same unix-socket sink.",
    "passthrough = no TLS in the relay: the sink terminates the mTLS (a builder holding per-build trust); its CPU excludes the crypto, which moves to the builder.",
    `total bench time ${result.totalSeconds.toFixed(1)} s`,
  );
  process.stdout.write(`${out.join("\n")}\n`);
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
