/**
 * @module test/bench/admission
 * One build admission as the depot CLI does it (CreateBuild, GetBuildKitConnection until
 * active, FinishBuild), over a served appliance: shared by the builds bench and the wire bench's
 * before/after comparison so both time exactly the same calls. Also what puts the figures in
 * proportion: the server's CPU time (Linux /proc) and the floor of three authenticated calls.
 */
import { readFileSync } from "node:fs";

/** POST a JSON body with a bearer token; `get` is the served appliance's fetch. */
export type Post = (token: string, path: string, body: unknown) => Promise<Response>;

export function jsonPoster(get: (path: string, init: RequestInit) => Promise<Response>): Post {
  return (token, path, body) =>
    get(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
}

/** A bench project and a project token for it, made by the administrator. */
export async function benchProject(post: Post, admin: string): Promise<{ projectId: string; token: string }> {
  const proj = (await (await post(admin, "/api/v1/orgs/default/projects", { name: "bench" })).json()) as {
    id: string;
  };
  const created = (await (
    await post(admin, "/api/v1/tokens", { kind: "project", name: "bench", project: proj.id })
  ).json()) as { token: string };
  return { projectId: proj.id, token: created.token };
}

/** Times one admission in ms (create → active); the build is finished after the clock stops. */
export function admitter(post: Post, token: string, projectId: string): () => Promise<number> {
  return async () => {
    const t = performance.now();
    const c = (await (await post(token, "/depot.cli.v1.BuildService/CreateBuild", { projectId })).json()) as {
      buildId: string;
      buildToken: string;
    };
    for (;;) {
      const r = (await (
        await post(c.buildToken, "/depot.cli.v1.BuildService/GetBuildKitConnection", {
          buildId: c.buildId,
          platform: "BUILDER_PLATFORM_AMD64",
        })
      ).json()) as { active?: unknown; pending?: { waitMs: number } };
      if (r.active) break;
      await Bun.sleep(r.pending?.waitMs ?? 100);
    }
    const ms = performance.now() - t;
    await post(c.buildToken, "/depot.cli.v1.BuildService/FinishBuild", { buildId: c.buildId, success: {} });
    return ms;
  };
}

/** Three authenticated Connect calls that do next to no work (GetBuild of a finished build with
 * its token): what any admission's three calls cost in HTTPS, Connect and token checks alone. */
export function connectFloor(post: Post, build: { buildId: string; buildToken: string }): () => Promise<number> {
  return async () => {
    const t = performance.now();
    for (let i = 0; i < 3; i++)
      await (await post(build.buildToken, "/depot.cli.v1.BuildService/GetBuild", { buildId: build.buildId })).text();
    return performance.now() - t;
  };
}

/** A build made and finished, for connectFloor. */
export async function finishedBuild(post: Post, token: string, projectId: string) {
  const c = (await (await post(token, "/depot.cli.v1.BuildService/CreateBuild", { projectId })).json()) as {
    buildId: string;
    buildToken: string;
  };
  await post(c.buildToken, "/depot.cli.v1.BuildService/FinishBuild", { buildId: c.buildId, success: {} });
  return c;
}

/** CPU time a process has used so far, in ms: all its threads, and its main thread (the event
 * loop) alone, from /proc (Linux). */
export function cpuTime(pid: number): { process: number; mainThread: number } {
  // utime and stime are fields 14 and 15 of /proc/PID/stat, counted after the command's ")".
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  // schedstat's first field: nanoseconds on a CPU, exact where the ticks are 10 ms steps.
  const mainNs = Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]);
  return { process: ticks * (1000 / CLOCK_TICKS), mainThread: mainNs / 1e6 };
}

/** USER_HZ: 100 on every Linux this runs on (the kernel's ABI fixes it for /proc). */
const CLOCK_TICKS = 100;
