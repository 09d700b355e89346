/**
 * @module test/support/builder-cleanup
 * Builders outlive `serve` by design (the next one adopts them), so an end-to-end test removes
 * what its appliance started: the projects' builder containers and their networks. Left behind,
 * networks use up Docker's ~30 default address pools and later tests' builders cannot start.
 */
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import Docker from "dockerode";
import { servedDataDirs } from "./serve.ts";
import { builderNetworkPolicyFactory, policyNames } from "../../src/builders/index.ts";
import { run } from "../../src/host/run.ts";

export async function removeBuildersOf(
  projectIds: string[],
  docker = new Docker({ socketPath: "/var/run/docker.sock" }),
): Promise<void> {
  for (const project of projectIds.filter(Boolean)) {
    const label = JSON.stringify({ label: [`io.slipway.project=${project}`] });
    for (const c of (await docker.listContainers({ all: true, filters: label }).catch(() => [])) as { Id: string }[]) {
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => {});
    }
    for (const n of (await docker.listNetworks({ filters: label }).catch(() => [])) as { Id: string }[]) {
      await docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => {});
    }
  }
}

/**
 * Everything carrying the `io.slipway.appliance` label of an appliance this process served: a
 * builder (or network) whose project id the test never learned, e.g. because its setup failed
 * halfway, is found all the same; and the builder network policy's rules and sets, which a serve
 * killed with -9 leaves in place (by design: its builders stay filtered). Call it in afterAll
 * after stopping serve, whatever the outcome.
 */
export async function removeBuildersOfServed(
  docker = new Docker({ socketPath: "/var/run/docker.sock" }),
): Promise<void> {
  for (const dataDir of servedDataDirs) {
    const file = join(dataDir, "slipway.db");
    if (!existsSync(file)) continue;
    let applianceId: string | undefined;
    try {
      const db = new Database(file, { readonly: true });
      try {
        applianceId = (db.query("SELECT id FROM appliance").get() as { id: string } | null)?.id;
      } finally {
        db.close();
      }
    } catch {
      continue; // no appliance was ever made there
    }
    if (!applianceId) continue;
    const label = JSON.stringify({ label: [`io.slipway.appliance=${applianceId}`] });
    for (const c of (await docker.listContainers({ all: true, filters: label }).catch(() => [])) as { Id: string }[]) {
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => {});
    }
    for (const n of (await docker.listNetworks({ filters: label }).catch(() => [])) as { Id: string }[]) {
      await docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => {});
    }
    const policy = builderNetworkPolicyFactory({
      exec: (argv, opts) => run(argv, opts),
      names: policyNames(applianceId),
      settings: { mode: "enforce", allow: [], mirrors: [] },
      registryPort: null,
    });
    await policy.remove().catch(() => {});
  }
}
