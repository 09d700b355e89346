/**
 * @module builders/network
 * A project's own bridge network for its builders, with traffic between containers off, so one
 * project's builder cannot reach another's.
 */
import type Docker from "dockerode";
import { PreconditionError } from "../errors.ts";

/** The network's id: the existing one if it carries this project's label, else a new one. */
export async function ensureProjectNetwork(
  docker: Pick<Docker, "getNetwork" | "createNetwork">,
  o: { name: string; projectId: string; labels: Record<string, string>; projectLabel: string },
): Promise<string> {
  try {
    const info = (await docker.getNetwork(o.name).inspect()) as { Id: string; Labels?: Record<string, string> };
    if (info.Labels?.[o.projectLabel] !== o.projectId) throw new PreconditionError(`Docker network ${o.name} exists but is not this project's builder network`);
    return info.Id;
  } catch (e) {
    if ((e as { statusCode?: number })?.statusCode !== 404) throw e;
  }
  try {
    const n = await docker.createNetwork({
      Name: o.name,
      Driver: "bridge",
      CheckDuplicate: true,
      Internal: false,
      Labels: o.labels,
      // No traffic between containers on this network; each project has its own network.
      Options: { "com.docker.network.bridge.enable_icc": "false" },
    });
    return n.id;
  } catch (e) {
    // Two starts for two platforms of one project may race to create it.
    if (/already exists/i.test(String((e as Error).message))) return ((await docker.getNetwork(o.name).inspect()) as { Id: string }).Id;
    throw e;
  }
}
