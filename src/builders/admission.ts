/**
 * @module builders/admission
 * Which builder may start when slots are short. Every builder that is not absent holds a slot
 * (idle ones too: they keep their network), and so does a start in flight. A builder may start
 * when its organization runs fewer than its max_running_builders and the host fewer than
 * maxRunning. Otherwise its request waits here, polled by the client (GetBuildKitConnection
 * answers pending): free slots go first to the organization running the fewest builders, first
 * come first served within one, so a busy tenant cannot starve the others. A waiting request
 * stops an idle builder (least recently used: its own organization's when that is at its quota,
 * anyone's when the host is full) instead of waiting for its idle timeout; one that waited past
 * queueTimeoutMs is refused.
 */
import { QuotaExceededError, ResourceExhaustedError, type SlipwayError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { QuotasService } from "../orgs/quotas.ts";
import type { BuilderStore } from "./store.ts";
import { builderKey, type BuilderRef, type BuilderRow } from "./types.ts";

export interface BuilderAdmissionDeps {
  store: Pick<BuilderStore, "active" | "idle" | "projectBusy">;
  /** The organization of each of these projects that exists. */
  orgsOf: (projectIds: readonly string[]) => Map<string, string>;
  quotas?: Pick<QuotasService, "limits">;
  maxRunning?: number;
  queueTimeoutMs?: number;
  /** The starts in flight, by builderKey. */
  starting: Pick<ReadonlyMap<string, unknown>, "keys" | "has">;
  /** Whether a build holds the builder (by key). */
  held: (key: string) => boolean;
  /** Stops an idle builder to make room. */
  stop: (ref: BuilderRef, reason: string) => Promise<void>;
  log: Logger;
  now: () => Date;
}

interface Waiter {
  orgId: string;
  since: number;
  polled: number;
}

/** A waiter whose client stopped asking (GetBuildKitConnection every second) gives its turn up. */
const STALE_WAITER_MS = 15_000;

export type BuilderAdmission = ReturnType<typeof builderAdmissionFactory>;

// The line (waiters, refusals) is this closure's state; admit() is the one longer step.
export function builderAdmissionFactory(deps: BuilderAdmissionDeps) {
  const { store, orgsOf, log, now } = deps;
  const waiters = new Map<string, Waiter>();
  /** Builds (holders) refused after waiting: the depot CLI asks twice, the second ask is refused at once. */
  const refusedHolders = new Map<string, SlipwayError>();
  const maxRunning = deps.maxRunning ?? Number.POSITIVE_INFINITY;
  const queueTimeoutMs = deps.queueTimeoutMs ?? 300_000;
  let reclaiming = false;
  const orgLimit = (orgId: string) => deps.quotas?.limits(orgId).max_running_builders ?? Number.POSITIVE_INFINITY;

  /** Builder key → organization, for every builder holding a slot (a builder whose project is gone holds none). */
  function occupancy(): Map<string, string> {
    const occ = new Map<string, string>();
    const rows = store.active();
    const startingKeys = [...deps.starting.keys()];
    const orgs = orgsOf([...new Set([...rows.map((b) => b.project_id), ...startingKeys.map((k) => k.split("|")[0]!)])]);
    for (const b of rows) {
      const org = orgs.get(b.project_id);
      if (org) occ.set(builderKey({ projectId: b.project_id, platform: b.platform }), org);
    }
    for (const k of startingKeys) {
      const org = occ.has(k) ? null : orgs.get(k.split("|")[0]!);
      if (org) occ.set(k, org);
    }
    return occ;
  }
  const countBy = (occ: Map<string, string>) => {
    const used = new Map<string, number>();
    for (const o of occ.values()) used.set(o, (used.get(o) ?? 0) + 1);
    return used;
  };

  /** The least recently used idle builder (of one organization, or any) nobody holds. */
  function idleBuilder(orgId: string | null): BuilderRow | null {
    const rows = store.idle();
    const orgs = orgsOf([...new Set(rows.map((b) => b.project_id))]);
    return (
      rows.find((b) => {
        const org = orgs.get(b.project_id);
        if (!org || (orgId !== null && org !== orgId)) return false;
        const k = builderKey({ projectId: b.project_id, platform: b.platform });
        return !deps.starting.has(k) && !deps.held(k);
      }) ?? null
    );
  }

  function reclaimIdle(orgId: string | null) {
    if (reclaiming) return;
    const b = idleBuilder(orgId);
    if (!b) return;
    reclaiming = true;
    const ref = { projectId: b.project_id, platform: b.platform };
    log.info("stopping an idle builder to make room for a waiting build", {
      builder: b.id,
      project: b.project_id,
      platform: b.platform,
    });
    void deps
      .stop(ref, "room for a waiting build")
      .catch((e) => log.warn("stopping an idle builder failed", { builder: b.id, error: (e as Error).message }))
      .finally(() => (reclaiming = false));
  }

  /** The waiter that gets the next free slot, slots handed out in fair order as if every waiter asked now. */
  function admitted(k: string, used: Map<string, number>, free: number): boolean {
    const taken = new Map(used);
    const line = new Map(waiters);
    for (let room = free; room > 0 && line.size > 0; room--) {
      let next: [string, Waiter] | null = null;
      for (const e of line) {
        const n = taken.get(e[1].orgId) ?? 0;
        if (n >= orgLimit(e[1].orgId)) continue;
        if (
          !next ||
          n < (taken.get(next[1].orgId) ?? 0) ||
          (n === (taken.get(next[1].orgId) ?? 0) && e[1].since < next[1].since)
        )
          next = e;
      }
      if (!next) return false;
      if (next[0] === k) return true;
      line.delete(next[0]);
      taken.set(next[1].orgId, (taken.get(next[1].orgId) ?? 0) + 1);
    }
    return false;
  }

  return {
    /** Whether the builder `ref` (not running) may start now; otherwise it waits in line. */
    admit(ref: BuilderRef, orgId: string, holder: string): boolean {
      const refused = refusedHolders.get(holder);
      if (refused) throw refused;
      const k = builderKey(ref);
      const t = now().getTime();
      for (const [wk, w] of waiters) if (t - w.polled > STALE_WAITER_MS || !deps.held(wk)) waiters.delete(wk);
      const limit = orgLimit(orgId);
      if (limit === 0)
        throw new QuotaExceededError(
          "the organization's quota max_running_builders is 0: it may run no builder; ask the administrator to raise it",
          "max_running_builders",
          0,
          0,
        );
      const occ = occupancy();
      const used = countBy(occ);
      let w = waiters.get(k);
      if (!w) {
        waiters.set(k, (w = { orgId, since: t, polled: t }));
      }
      w.polled = t;
      if (admitted(k, used, maxRunning - occ.size)) {
        waiters.delete(k);
        return true;
      }
      const orgFull = (used.get(orgId) ?? 0) >= limit;
      if (orgFull) reclaimIdle(orgId);
      else if (occ.size >= maxRunning) reclaimIdle(null);
      const waited = t - w.since;
      if (waited === 0)
        log.info("a build waits for a builder slot", {
          project: ref.projectId,
          platform: ref.platform,
          org: orgId,
          org_running: used.get(orgId) ?? 0,
          org_limit: limit,
          host_running: occ.size,
          host_limit: maxRunning,
        });
      if (waited >= queueTimeoutMs) {
        waiters.delete(k);
        const s = Math.round(waited / 1000);
        const refusal = orgFull
          ? new QuotaExceededError(
              `no builder after waiting ${s} s: the organization runs ${used.get(orgId) ?? 0} builder(s), its quota max_running_builders is ${limit}; try again when one of its builds has ended, or ask the administrator to raise the quota`,
              "max_running_builders",
              limit,
              used.get(orgId) ?? 0,
            )
          : new ResourceExhaustedError(
              `no builder after waiting ${s} s: this host runs ${occ.size} builder(s), its limit builders.max_running is ${maxRunning}; try again later`,
            );
        refusedHolders.set(holder, refusal);
        log.info("a build waited too long for a builder slot", {
          project: ref.projectId,
          platform: ref.platform,
          build: holder,
          waited_ms: waited,
        });
        throw refusal;
      }
      return false;
    },

    /**
     * CreateBuild's early answer: a build whose organization already runs as many builders as
     * its quota allows, none of them idle nor its project's, is refused before it is made.
     */
    admissible(orgId: string, projectId: string): void {
      const limit = orgLimit(orgId);
      // No quota: nothing to count (the occupancy is two queries on every CreateBuild).
      if (limit === Number.POSITIVE_INFINITY) return;
      // The project's own builder (running or starting) takes no new slot: asked first, in one
      // indexed read, because it is the warm case of every CreateBuild.
      const own = `${projectId}|`;
      if (limit > 0 && (store.projectBusy(projectId) || [...deps.starting.keys()].some((k) => k.startsWith(own))))
        return;
      const occ = occupancy();
      const used = countBy(occ).get(orgId) ?? 0;
      if (used < limit || (limit > 0 && idleBuilder(orgId))) return;
      throw new QuotaExceededError(
        `the organization runs ${used} builder(s) for builds in progress and its quota max_running_builders is ${limit}: try again when one of its builds has ended, or ask the administrator to raise the quota`,
        "max_running_builders",
        limit,
        used,
      );
    },

    /** Whether a request for builder `key` waits in the line. */
    waiting(key: string): boolean {
      return waiters.has(key);
    },

    /** The build ended: a refusal it was given is forgotten. */
    forget(holder: string): void {
      refusedHolders.delete(holder);
    },
  };
}
