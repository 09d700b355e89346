/**
 * @module test/e2e/build-token
 * A build token against the compiled `serve`, over Connect: it reports steps and logs while its
 * build runs, and once the build finished (or was canceled) ReportStatus, ReportTimings and
 * ReportStatusStream are refused with failed_precondition and nothing more is kept.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { serve, type Served } from "../support/serve.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-build-token-"));
let s: Served;
let admin = "";
let project = "";
beforeAll(async () => {
  s = await serve(slipwayBinary(), join(work, "data"), ["--set", "volumes.encryption=none"]);
  admin = readFileSync(join(s.dataDir, "initial-admin-token"), "utf8").trim();
  project = (
    (await (
      await s.get("/api/v1/orgs/default/projects", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "build-token" }),
      })
    ).json()) as { id: string }
  ).id;
});
afterAll(async () => {
  await s?.stop();
  await removeBuildersOfServed(); // a serve that did not stop cleanly leaves its builder network policy
  rmSync(work, { recursive: true, force: true });
});

const BUILD = "/depot.cli.v1.BuildService";
const rpc = (token: string, method: string, body: unknown) =>
  s.get(`${BUILD}/${method}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "connect-protocol-version": "1" },
    body: JSON.stringify(body),
  });
function statusBatch(buildId: string, text: string) {
  const at = new Date().toISOString();
  return {
    buildId,
    statuses: [
      {
        vertexes: [{ digest: `sha256:${text}`, name: `RUN ${text}`, started: at, completed: at }],
        logs: [
          { vertex: `sha256:${text}`, stream: "1", timestamp: at, msg: Buffer.from(`${text}\n`).toString("base64") },
        ],
      },
    ],
  };
}
function streamFrame(msg: unknown): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(msg));
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

describe("a build token after its build ended", () => {
  for (const ending of [{ success: {} }, { canceled: {} }]) {
    test(`${Object.keys(ending)[0]}: steps and logs are refused with failed_precondition; what came before is kept`, async () => {
      const created = (await (await rpc(admin, "CreateBuild", { projectId: project })).json()) as {
        buildId: string;
        buildToken: string;
      };
      const token = created.buildToken;
      expect((await rpc(token, "ReportStatus", statusBatch(created.buildId, "during"))).status).toBe(200);
      expect((await rpc(token, "FinishBuild", { buildId: created.buildId, ...ending })).status).toBe(200);

      const after = await rpc(token, "ReportStatus", statusBatch(created.buildId, "after"));
      expect(after.status).toBe(400);
      const error = (await after.json()) as { code: string; message: string };
      expect(error.code).toBe("failed_precondition");
      expect(error.message).toMatch(/is (finished|canceled): it takes no more steps or logs/);
      const timings = await rpc(token, "ReportTimings", {
        buildId: created.buildId,
        buildSteps: [
          { name: "RUN late", stableDigest: "sha256:late", startTime: new Date().toISOString(), durationMs: 5 },
        ],
      });
      expect([timings.status, ((await timings.json()) as { code: string }).code]).toEqual([400, "failed_precondition"]);
      const stream = await s.get(`${BUILD}/ReportStatusStream`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/connect+json",
          "connect-protocol-version": "1",
        },
        body: streamFrame(statusBatch(created.buildId, "streamed")),
      });
      const body = new Uint8Array(await stream.arrayBuffer());
      expect(body[0]! & 0x02).toBe(2);
      expect((JSON.parse(new TextDecoder().decode(body.subarray(5))) as { error: { code: string } }).error.code).toBe(
        "failed_precondition",
      );

      const steps = (await (
        await s.get(`/api/v1/builds/${created.buildId}/steps`, { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { name: string }[];
      const logs = await (
        await s.get(`/api/v1/builds/${created.buildId}/logs`, { headers: { authorization: `Bearer ${admin}` } })
      ).text();
      expect(logs).toContain("during");
      expect(logs).not.toContain("after");
      expect(logs).not.toContain("streamed");
      expect(steps.map((x) => x.name)).toEqual(["RUN during"]);
    }, 60_000);
  }
});
