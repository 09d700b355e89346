/**
 * @module agent/reconcile
 * The agent's one writer of the kernel's state: compiles the current policy with what the agent
 * knows locally (pinned and learned names, Docker bridges, resolvers, the appliance's
 * addresses), applies it when it differs from what is applied, writes the hosts block, and
 * reports the apply status. Applies and the watchdog's re-assertions are serialized on one
 * chain, so neither ever undoes the other.
 */
import type { Logger } from "../log/logger.ts";
import type { AgentPolicy } from "../wire/egress/policy.ts";
import type { Applier } from "./apply.ts";
import { compile, hostnamesOf } from "./compile.ts";
import type { DockerBridges } from "./docker-bridges.ts";
import { writeHostsBlock } from "./hosts-file.ts";
import type { learnedNamesFactory } from "./learned-names.ts";
import type { Compiled } from "./render.ts";
import type { Pinner } from "./resolve.ts";
import type { PolicySource } from "./sources.ts";

export interface ReconcilerOptions {
  applier: Applier;
  pinner: Pinner;
  learned: ReturnType<typeof learnedNamesFactory>;
  bridges: DockerBridges;
  source: Pick<PolicySource, "reportStatus">;
  log: Logger;
  hostsFile: string;
  /** Scopes given locally (`--scope`); replace the policy's when given. */
  localScopes: string[] | undefined;
  serverAddresses: string[];
  resolverAddresses: () => string[];
  nflogGroup: number;
  policy: () => AgentPolicy | null;
  stopped: () => boolean;
}

export type Reconciler = ReturnType<typeof reconcilerFactory>;

export function reconcilerFactory(o: ReconcilerOptions) {
  const { pinner, learned, log } = o;
  let compiled: Compiled | null = null;
  let appliedKey = "";
  let applying: Promise<void> = Promise.resolve();

  /** Compiles and applies the current state; serialized, and skipped when nothing changed. */
  function reconcile(reason: string, force = false): Promise<void> {
    applying = applying.then(async () => {
      const p = o.policy();
      if (!p || o.stopped()) return;
      pinner.setNames(hostnamesOf(p, learned.names()));
      await pinner.refreshDue();
      const c = compile(
        p,
        {
          addressesOf: (n) => pinner.addresses(n),
          learnedNames: learned.names(),
          bridgeOf: (n) => o.bridges.bridgeOf(n),
          knownBridges: o.bridges.known(),
          alwaysAllow: o.serverAddresses,
          dnsServers: o.resolverAddresses(),
          nflogGroup: o.nflogGroup,
        },
        o.localScopes,
      );
      const key = JSON.stringify(c);
      if (!force && key === appliedKey) {
        if (compiled) writeHostsBlock(o.hostsFile, p.mode === "off" ? new Map() : pinner.pins());
        return;
      }
      try {
        await o.applier.apply(c);
        writeHostsBlock(o.hostsFile, p.mode === "off" ? new Map() : pinner.pins());
        compiled = c;
        appliedKey = key;
        log.info("egress: applied", {
          reason,
          etag: p.etag,
          mode: p.mode,
          default: p.default_action,
          rules: p.rules.length,
        });
        await o.source.reportStatus({ etag: p.etag, ok: true, dns_resolvers: o.resolverAddresses() }).catch(() => {});
      } catch (e) {
        log.error("egress: apply failed", { reason, error: String(e) });
        await o.source.reportStatus({ etag: p.etag, ok: false, error: String(e).slice(0, 4000) }).catch(() => {});
      }
    });
    return applying;
  }

  /** The watchdog: puts back what something else rewrote (Docker, a firewall manager). */
  function reassert(): Promise<void> {
    return (applying = applying.then(async () => {
      // What is applied when the check runs, not when it was queued: an apply queued before it
      // (a Docker event) would otherwise be undone with the previous jumps.
      const c = compiled;
      if (c && !o.stopped() && (await o.applier.check(c)))
        log.warn("egress: re-asserted the rules (something rewrote the tables)");
    }));
  }

  return {
    reconcile,
    reassert,
    /** What is applied now (null before the first policy). */
    compiled: () => compiled,
    /** Resolves when everything applied so far is in the kernel. */
    settled: () => applying,
  };
}
