/**
 * @module agent/sources
 * What the agent is given to talk to the world: where its policy comes from and where its
 * reports go (the appliance's API, ./appliance-client.ts, or `serve`'s egress service
 * in-process), and where drops come from (NFLOG, ./nflog.ts). Interfaces only, so the agent's
 * modules and their providers depend on this file rather than on each other.
 */
import type { AgentPolicy, EventReport, StatusReport } from "../wire/egress/policy.ts";

/** Where the agent's policy comes from (the appliance's API, or in-process for `serve`). */
export interface PolicySource {
  /** The policy once it differs from `etag` (or after `waitSeconds`); throws when unreachable. */
  fetch(etag: string | null, waitSeconds: number, signal: AbortSignal): Promise<AgentPolicy>;
  reportStatus(s: StatusReport): Promise<void>;
  reportEvents(events: EventReport[]): Promise<void>;
}

/** A dropped (or, in monitor mode, would-be dropped) packet, as NFLOG saw it. */
export interface DropEvent {
  src: string;
  dst: string;
  port: number;
  protocol: string;
  uid: number | null;
  indev: string | null;
  /** Logged by monitor mode (would have been dropped) rather than dropped. */
  monitor: boolean;
}

export interface DropSource {
  start(onEvent: (e: DropEvent) => void): Promise<void>;
  stop(): void;
}
