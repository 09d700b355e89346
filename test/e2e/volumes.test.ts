/**
 * @module test/e2e/volumes
 * The compiled binary on this host: `/readyz` and `slipway doctor` say whether cache volumes
 * are encrypted, and why not; with `volumes.encryption = "none"` they say NOT encrypted and the
 * log says `encryption: none`. (The LUKS life cycle itself runs in test/vm, in a real kernel.)
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectDmCrypt } from "../../src/volumes/index.ts";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { runSlipway, serve } from "../support/serve.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-e2e-vol-"));
afterAll(async () => {
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});
const dm = detectDmCrypt();

test("default (luks): /readyz and doctor report dm-crypt's absence, or encryption on", async () => {
  const bin = slipwayBinary();
  const s = await serve(bin, join(work, "a"));
  try {
    const ready = (await (await s.get("/readyz")).json()) as {
      checks: Record<string, { status: string; output: string; observedValue: string }[]>;
    };
    const c = ready.checks["volumes:encryption"]![0]!;
    if (dm.usable) expect(c).toMatchObject({ status: "pass", observedValue: "luks2" });
    else {
      expect(c).toMatchObject({ status: "warn", observedValue: "unavailable" });
      expect(c.output).toContain(dm.reason);
      expect(c.output).toContain("Builds are refused");
    }
  } finally {
    await s.stop();
  }
  const doctor = await runSlipway(bin, ["doctor", "--data-dir", join(work, "a"), "--json"]);
  const findings = JSON.parse(doctor.stdout).findings as {
    check: string;
    status: string;
    message: string;
    fix?: string;
  }[];
  const v = findings.find((f) => f.check === "volumes")!;
  expect(v.status).toBe(dm.usable ? "ok" : "warn");
  if (!dm.usable) expect(v.fix).toContain('volumes.encryption = "none"');
});

test("encryption none: /readyz and the log say the caches are not encrypted", async () => {
  const s = await serve(slipwayBinary(), join(work, "b"), ["--set", "volumes.encryption=none"]);
  try {
    const ready = (await (await s.get("/readyz")).json()) as {
      checks: Record<string, { status: string; output: string; observedValue: string }[]>;
    };
    expect(ready.checks["volumes:encryption"]![0]).toMatchObject({ status: "warn", observedValue: "none" });
    expect(ready.checks["volumes:encryption"]![0]!.output).toContain("NOT encrypted");
    expect(s.logs()).toContain('"encryption":"none"');
  } finally {
    await s.stop();
  }
});
