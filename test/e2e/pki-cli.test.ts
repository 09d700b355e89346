/**
 * @module test/e2e/pki-cli
 * `slipway pki` on a real data dir with the compiled binary: rotating the build-client
 * intermediate, re-issuing the root (ca.pem then holds both), and a restarted server whose
 * certificate chains to the new root.
 */
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { cpSync, lstatSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { runSlipway, serve } from "../support/serve.ts";

let bin: string;
let work: string;
let pristine: string;
beforeAll(async () => {
  bin = slipwayBinary();
  work = mkdtempSync(join(tmpdir(), "slipway-pki-"));
  pristine = join(work, "pristine");
  const s = await serve(bin, pristine); // first start creates the hierarchy
  expect(await s.stop()).toBe(0);
});
afterAll(async () => {
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});

// Each test rotates on its own copy of the freshly made data dir: none depends on another's
// rotation, and each runs alone (bun test -t NAME).
let copies = 0;
let dataDir: string;
beforeEach(() => {
  dataDir = join(work, `data-${++copies}`);
  cpSync(pristine, dataDir, { recursive: true, filter: (from) => !lstatSync(from).isSocket() }); // a socket is not copied; serve makes its own
});

const pki = async (...args: string[]) => {
  const r = await runSlipway(bin, ["pki", ...args, "--data-dir", dataDir, "--json"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};

test("list shows the root and both intermediates", async () => {
  const rows = (await pki("list")) as { purpose: string; retired_at: string | null }[];
  expect(rows.map((r) => r.purpose).sort()).toEqual(["build-client", "root", "server"]);
  expect(rows.every((r) => r.retired_at === null)).toBe(true);
});

test("rotate needs a valid --purpose", async () => {
  const r = await runSlipway(bin, ["pki", "rotate", "--purpose", "root", "--data-dir", dataDir]);
  expect(r.code).toBe(2);
});

test("rotating the build-client intermediate retires the old one", async () => {
  const out = await pki("rotate", "--purpose", "build-client");
  expect(out.purpose).toBe("build-client");
  const rows = (await pki("list")) as { purpose: string; retired_at: string | null }[];
  expect(
    rows
      .filter((r) => r.purpose === "build-client")
      .map((r) => r.retired_at === null)
      .sort(),
  ).toEqual([false, true]);
});

test("re-issuing the root: ca.pem holds both, and a restarted server chains to the new one", async () => {
  const before = readFileSync(join(dataDir, "ca.pem"), "utf8");
  const out = await pki("rotate-root");
  expect(out.created.map((c: { purpose: string }) => c.purpose).sort()).toEqual(["build-client", "root", "server"]);
  const after = readFileSync(join(dataDir, "ca.pem"), "utf8");
  expect(after.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  expect(after).toContain(before.trim());
  const newRoot = new X509Certificate(after.split(/(?=-----BEGIN CERTIFICATE-----)/)[0]!);
  const s = await serve(bin, dataDir);
  try {
    expect((await s.get("/readyz")).status).toBe(200); // trusted through the bundle
    const only = newRoot.toString();
    expect((await fetch(`${s.url}/livez`, { tls: { ca: only } })).status).toBe(200); // the new root alone suffices
    await expect(fetch(`${s.url}/livez`, { tls: { ca: before } })).rejects.toThrow(); // the old root alone no longer does
  } finally {
    expect(await s.stop()).toBe(0);
  }
});
