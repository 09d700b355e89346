/**
 * @module test/bench/pki
 * `bun test/bench/pki.ts`: per-build client certificate issuance (the appliance's real path:
 * fresh ECDSA P-256 key, sign, record) — p50/p99 latency, certificates per second when 1,000
 * are issued concurrently, and the event loop's worst stall meanwhile — against node-forge
 * RSA-2048 issuance measured in the same run (the alternative not taken: pure-JS RSA makes keys
 * and signatures synchronously, on the event loop; it cannot make ECDSA certificates at all).
 * A report: nothing fails on timing.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";
import { generateKeyPairSync } from "node:crypto";
import { applyMigrations, openDatabase, startCheckpointer } from "../../src/db/index.ts";
import { pkiServiceFactory } from "../../src/pki/index.ts";
import { createSealer } from "../../src/secrets/index.ts";

const SEQUENTIAL = 300;
const CONCURRENT = 1000;
const FORGE_RUNS = 10;
const BURSTS = 5;

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

/** Samples how late a 1 ms timer fires: the event loop's stalls. */
function lagMonitor() {
  let worst = 0;
  let last = performance.now();
  let running = true;
  const tick = () => {
    const t = performance.now();
    worst = Math.max(worst, t - last - 1);
    last = t;
    if (running) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  return {
    stop() {
      running = false;
      return Math.max(0, worst);
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), "slipway-bench-pki-"));
try {
  const db = openDatabase(join(dir, "bench.db"));
  applyMigrations(db);
  const checkpointer = await startCheckpointer(db, join(dir, "bench.db")); // as serve runs it
  const pki = pkiServiceFactory({
    db,
    sealer: await createSealer(crypto.getRandomValues(new Uint8Array(32))),
    applianceId: "bench",
  });
  await pki.ensureHierarchy(["server", "build-client"]);
  const req = (i: number) => ({
    orgId: "org_b",
    projectId: "prj_b",
    buildId: `bld_${i}`,
    platform: "amd64",
    lifetimeMs: 7_200_000 + 600_000,
    requester: "bench",
  });

  for (let i = 0; i < 30; i++) await pki.issueBuildClientCertificate(req(i)); // warm-up

  // 1. Sequential latency.
  const lat: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now();
    await pki.issueBuildClientCertificate(req(i));
    lat.push(performance.now() - t);
  }

  // 2. 1,000 at once, BURSTS times: throughput and the worst event-loop stall of each burst.
  //    Baseline: the same monitor on an idle loop for as long as a burst takes (this machine's
  //    own timer jitter).
  const burstLags: number[] = [];
  const burstMs: number[] = [];
  for (let b = 0; b < BURSTS; b++) {
    const mon = lagMonitor();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => pki.issueBuildClientCertificate(req(i))));
    burstMs.push(performance.now() - t0);
    await Bun.sleep(5);
    burstLags.push(mon.stop());
  }
  const concurrentMs = pct(burstMs, 50);
  const worstLag = pct(burstLags, 50);
  // The floor under that: the same bursts of bare P-256 key generations (no Slipway code, no
  // database) with the same yields — what the runtime's own allocation and GC cost the loop.
  const bareLags: number[] = [];
  for (let b = 0; b < BURSTS; b++) {
    const mon = lagMonitor();
    let since = performance.now();
    for (let i = 0; i < CONCURRENT; i++) {
      if (performance.now() - since > 0.5) await Bun.sleep(0), (since = performance.now());
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" });
    }
    await Bun.sleep(5);
    bareLags.push(mon.stop());
  }
  const idle = lagMonitor();
  await Bun.sleep(Math.max(200, concurrentMs));
  const idleLag = idle.stop();

  // 3. Baseline: node-forge, RSA-2048 key + certificate signed by an RSA CA (pure JS, synchronous).
  const caKeys = forge.pki.rsa.generateKeyPair(2048);
  const forgeLat: number[] = [];
  for (let i = 0; i < FORGE_RUNS; i++) {
    const t = performance.now();
    const keys = forge.pki.rsa.generateKeyPair(2048);
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = `01${Buffer.from(crypto.getRandomValues(new Uint8Array(15))).toString("hex")}`;
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 7_800_000);
    cert.setSubject([{ name: "commonName", value: `build:${i}` }]);
    cert.setIssuer([{ name: "commonName", value: "bench CA" }]);
    cert.setExtensions([
      { name: "extKeyUsage", clientAuth: true },
      { name: "subjectAltName", altNames: [{ type: 6, value: `slipway://bench/build/${i}` }] },
    ]);
    cert.sign(caKeys.privateKey, forge.md.sha256.create());
    forge.pki.certificateToPem(cert);
    forgeLat.push(performance.now() - t);
  }
  await checkpointer.stop();
  db.close();

  const p50 = pct(lat, 50);
  const f50 = pct(forgeLat, 50);
  const rows: [string, string, string, string, string][] = [
    [
      "issuance latency p50 (sequential)",
      fmt(p50),
      fmt(f50),
      `${(f50 / p50).toFixed(0)}x faster`,
      p50 <= 2 ? "≤ 2 ms  ok" : "≤ 2 ms  MISSED",
    ],
    ["issuance latency p99 (sequential)", fmt(pct(lat, 99)), fmt(pct(forgeLat, 99)), "", ""],
    [
      `certificates/s (${CONCURRENT} concurrent)`,
      `${Math.round((CONCURRENT / concurrentMs) * 1000)} /s`,
      `${Math.round(1000 / (forgeLat.reduce((a, b) => a + b, 0) / forgeLat.length))} /s`,
      "",
      "",
    ],
    [
      `event-loop stall, median burst (${BURSTS}x${CONCURRENT})`,
      fmt(worstLag),
      "whole issuance (sync)",
      "",
      worstLag <= 5 ? "≤ 5 ms  ok" : "≤ 5 ms  MISSED",
    ],
    [
      `event-loop stall, worst burst`,
      fmt(Math.max(...burstLags)),
      "",
      "",
      `${burstLags.filter((l) => l > 5).length}/${BURSTS} bursts over 5 ms`,
    ],
    [
      `stall, bare key generation, median burst`,
      fmt(pct(bareLags, 50)),
      "",
      "",
      `worst ${fmt(Math.max(...bareLags))} (runtime floor)`,
    ],
    ["worst timer lateness on an idle loop (baseline)", fmt(idleLag), "", "", ""],
  ];
  console.log(
    `slipway pki bench: bun ${Bun.version}; ECDSA P-256 on WebCrypto vs node-forge RSA-2048 (${FORGE_RUNS} runs), same process`,
  );
  console.log(
    `${"metric".padEnd(40)} ${"slipway".padStart(12)} ${"node-forge".padStart(22)} ${"ratio".padStart(12)}   target`,
  );
  for (const [m, a, b, r, tgt] of rows)
    console.log(`${m.padEnd(40)} ${a.padStart(12)} ${b.padStart(22)} ${r.padStart(12)}   ${tgt}`);
  console.log(
    `   node-forge blocks the event loop for its whole issuance (key generation and signing are synchronous JS)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
