/**
 * @module builders/readiness
 * A starting builder is ready when BuildKit answers ListWorkers with a worker on its socket; a
 * container that exits first fails the start with the last lines it logged.
 */
import type Docker from "dockerode";
import { existsSync } from "node:fs";
import { SlipwayError } from "../errors.ts";
import type { BuilderRuntime } from "../router/index.ts";
import { listWorkersAt, type WorkerInfo } from "./image/grpc.ts";

export class BuilderUnavailableError extends SlipwayError {
  override name = "BuilderUnavailableError";
}

/** The workers BuildKit reports once it answers (an emulated builder's name the platforms it can run). */
export async function waitReady(
  o: { docker: Pick<Docker, "getContainer">; runtime: BuilderRuntime; timeoutMs: number; stopping: () => boolean },
  socketPath: string,
  containerId: string,
): Promise<WorkerInfo[]> {
  const { docker } = o;
  const deadline = performance.now() + o.timeoutMs;
  let lastError = "socket not there yet";
  while (performance.now() < deadline) {
    if (o.stopping()) throw new BuilderUnavailableError("the appliance is stopping");
    if (existsSync(socketPath)) {
      try {
        const workers = await listWorkersAt(socketPath, o.runtime, 5000);
        if (workers.length > 0) return workers;
        lastError = "BuildKit reports no workers yet";
      } catch (e) {
        lastError = (e as Error).message;
      }
    }
    const state = (
      (await docker
        .getContainer(containerId)
        .inspect()
        .catch(() => null)) as { State?: { Running: boolean; ExitCode: number } } | null
    )?.State;
    if (!state?.Running) {
      const logs = await containerLogTail(docker, containerId);
      throw new BuilderUnavailableError(
        `builder container exited (code ${state?.ExitCode ?? "?"}) before it was ready${logs ? `: ${logs}` : ""}`,
      );
    }
    await Bun.sleep(50);
  }
  throw new BuilderUnavailableError(`builder did not become ready within ${o.timeoutMs} ms (${lastError})`);
}

async function containerLogTail(docker: Pick<Docker, "getContainer">, containerId: string): Promise<string> {
  try {
    const buf = (await docker
      .getContainer(containerId)
      .logs({ stdout: true, stderr: true, tail: 5 })) as unknown as Buffer;
    // Multiplexed stream: strip the 8-byte frame headers.
    let out = "";
    for (let i = 0; i + 8 <= buf.length; ) {
      const len = buf.readUInt32BE(i + 4);
      out += buf.subarray(i + 8, i + 8 + len).toString("utf8");
      i += 8 + len;
    }
    return out.trim().split("\n").slice(-3).join(" | ").slice(0, 500);
  } catch {
    return "";
  }
}
