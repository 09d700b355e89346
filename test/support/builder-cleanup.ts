/**
 * @module test/support/builder-cleanup
 * Builders outlive `serve` by design (the next one adopts them), so an end-to-end test removes
 * what its appliance started: the projects' builder containers and their networks. Left behind,
 * networks use up Docker's ~30 default address pools and later tests' builders cannot start.
 */
import Docker from "dockerode";

export async function removeBuildersOf(projectIds: string[], docker = new Docker({ socketPath: "/var/run/docker.sock" })): Promise<void> {
  for (const project of projectIds.filter(Boolean)) {
    const label = JSON.stringify({ label: [`io.slipway.project=${project}`] });
    for (const c of (await docker.listContainers({ all: true, filters: label }).catch(() => [])) as { Id: string }[]) {
      await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
    }
    for (const n of (await docker.listNetworks({ filters: label }).catch(() => [])) as { Id: string }[]) {
      await docker.getNetwork(n.Id).remove().catch(() => {});
    }
  }
}
