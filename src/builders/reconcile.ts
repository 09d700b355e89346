/**
 * @module builders/reconcile
 * What a serve finds when it starts: it adopts the running builders the database knows (when
 * BuildKit answers, on a network the policy filters), removes labelled containers it does not,
 * forgets builders whose container vanished, and removes networks no running builder needs.
 */
import { rmSync } from "node:fs";
import type { BuilderRuntime } from "../router/index.ts";
import type { ImageCurrency } from "./currency.ts";
import { BUILDER_LABELS, type BuilderEngine } from "./engine.ts";
import { listWorkersAt } from "./image/grpc.ts";
import type { BuilderStore } from "./store.ts";
import type { BuilderRef, BuilderRow } from "./types.ts";

export interface ReconcileDeps {
  engine: Pick<BuilderEngine, "containers" | "onPolicyBridge" | "removeContainer" | "socketDir" | "networkProjects">;
  store: Pick<BuilderStore, "active" | "setState">;
  currency: Pick<ImageCurrency, "refresh" | "track">;
  runtime: BuilderRuntime;
  learnAddress: (builderId: string, containerId: string) => Promise<void>;
  /** An adopted builder nobody holds yet: its idle timer starts. */
  scheduleIdle: (ref: BuilderRef) => void;
  removeNetworkIfUnused: (projectId: string) => Promise<void>;
}

export interface Reconciled {
  adopted: string[];
  removed: string[];
  lost: { builderId: string; projectId: string; platform: string }[];
}

export async function reconcileBuilders(deps: ReconcileDeps): Promise<Reconciled> {
  const { engine, store, currency } = deps;
  await currency.refresh();
  const containers = await engine.containers();
  const byId = new Map(containers.map((c) => [c.Id, c]));
  const out: Reconciled = { adopted: [], removed: [], lost: [] };
  const rows = store.active();
  for (const b of rows) {
    const c = b.container_id ? byId.get(b.container_id) : undefined;
    const ref = { projectId: b.project_id, platform: b.platform };
    if (c && (await adoptable(deps, b, c))) {
      // What it runs is the container's own image; settings from before they were labelled count as old.
      currency.track(b.id, { image: b.image, imageId: c.ImageID, settings: c.Labels[BUILDER_LABELS.settings] ?? null });
      store.setState(b.id, "idle", { image_id: c.ImageID });
      out.adopted.push(b.id);
      await deps.learnAddress(b.id, c.Id);
      deps.scheduleIdle(ref);
    } else {
      if (c) await engine.removeContainer(c.Id);
      rmSync(engine.socketDir(b.id), { recursive: true, force: true });
      store.setState(b.id, "absent", { container_id: null, last_error: "not running when serve started" });
      out.lost.push({ builderId: b.id, ...ref });
    }
  }
  // Labelled containers no builder row accounts for: orphans.
  const known = new Set(rows.map((b) => b.container_id));
  for (const c of containers) {
    if (known.has(c.Id)) continue;
    await engine.removeContainer(c.Id);
    out.removed.push(c.Id);
  }
  // Networks of projects with no running builder: left by a crash, or by a builder that died.
  for (const projectId of await engine.networkProjects()) await deps.removeNetworkIfUnused(projectId);
  return out;
}

/** Whether a builder the database says runs can be adopted: running, answering, on a filtered network. */
async function adoptable(deps: ReconcileDeps, b: BuilderRow, c: { State: string }): Promise<boolean> {
  // A builder on a network the policy does not filter (from before it) is not adopted.
  if (
    c.State !== "running" ||
    !b.socket_path ||
    b.runtime !== deps.runtime ||
    !(await deps.engine.onPolicyBridge(b.network_id))
  )
    return false;
  try {
    await listWorkersAt(b.socket_path, b.runtime, 5000);
    return true;
  } catch {
    return false;
  }
}
