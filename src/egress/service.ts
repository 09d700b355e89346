/**
 * @module egress/service
 * The appliance side of egress: each organization's policy (mode, default, rules), its runner
 * hosts and their agent tokens, what agents report (apply status, would-be blocks), and the
 * policy document each agent pulls. Builder addresses are pushed here by the builder service
 * (`setBuilderAddresses`); every change wakes the agents' long polls, so a new builder is in
 * their sets well within a second.
 *
 * Which runner hosts `serve` enforces on the appliance host itself (egress.local_agent), and with
 * which scopes, only the administrator decides (`designateLocal`): those scopes, not the ones the
 * organization registered, are what the in-process agent applies, and its events outside them
 * are dropped.
 */
import type { Database } from "bun:sqlite";
import type { Actor } from "../auth/actor.ts";
import type { AuditService } from "../auth/audit.ts";
import { generateToken, hashToken } from "../auth/token-format.ts";
import { isUniqueViolation } from "../db/index.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../errors.ts";
import { newId } from "../ids.ts";
import type { AgentPolicy, EventAction, EventReport, Mode, RuleAction } from "../wire/egress/policy.ts";
import { parseScope, scopeText } from "../wire/egress/scopes.ts";
import {
  cidrContains,
  familyOf,
  parsePorts,
  parseTarget,
  portsText,
  targetText,
  wildcardMatches,
} from "../wire/egress/targets.ts";

/** The agent's contract, re-exported for the server's callers (the shapes live in src/wire). */
export type { AgentPolicy, EventAction, EventReport, Mode, RuleAction };

export interface EgressRule {
  id: string;
  action: RuleAction;
  target: string;
  ports: string | null;
  comment: string;
  created_at: string;
}

export interface EgressPolicy {
  org_id: string;
  mode: Mode;
  default_action: RuleAction;
  revision: number;
  updated_at: string | null;
  rules: EgressRule[];
}

export interface RunnerHost {
  id: string;
  org_id: string;
  name: string;
  scopes: string[];
  created_at: string;
  last_seen_at: string | null;
  applied_revision: string | null;
  applied_ok: boolean | null;
  applied_error: string | null;
  applied_at: string | null;
  /** The resolvers the agent allows for DNS only (53/udp, 53/tcp), as it last reported them. */
  dns_resolvers: string[];
  /** Scopes `serve` enforces this host with on the appliance host (set by the administrator); null: not local. */
  local_scopes: string[] | null;
}

export interface EgressEvent {
  /** would-block: monitor mode let it through; blocked: enforce mode refused it. */
  action: EventAction;
  host_id: string;
  scope: string;
  source: string;
  dst: string;
  port: number;
  protocol: string;
  hostname: string | null;
  count: number;
  first_at: string;
  last_at: string;
}

/** Events grouped by destination (name when the agent saw one, else address) and port, across hosts. */
export interface EgressDestination {
  destination: string;
  port: number;
  protocols: string[];
  /** Blocked (enforce) and would-block (monitor) connections, summed over every host and source. */
  blocked: number;
  would_block: number;
  hosts: number;
  first_at: string;
  last_at: string;
  /** The allow rule that lets this destination through now (no deny rule matching), or null. */
  allowed_by: string | null;
}

/** Does a rule's target and ports cover this destination (a name or an address) and port? */
function ruleCovers(rule: Pick<EgressRule, "target" | "ports">, destination: string, port: number): boolean {
  if (rule.ports !== null) {
    const ranges = parsePorts(rule.ports);
    if (typeof ranges === "string" || !ranges.some(([lo, hi]) => port >= lo && port <= hi)) return false;
  }
  const t = parseTarget(rule.target);
  if (typeof t === "string") return false;
  if (t.kind === "cidr") return familyOf(destination) !== null && cidrContains(t.cidr, destination);
  if (t.kind === "host") return t.name === destination.toLowerCase();
  return wildcardMatches(t.suffix, destination);
}

export interface EgressDeps {
  db: Database;
  audit: Pick<AuditService, "record">;
  /** Hostnames or addresses of the appliance's API and build endpoint. */
  applianceHosts: string[];
  /** Operator's extra always-allowed addresses/CIDRs (validated by the config). */
  extraAllow: string[];
  now?: () => Date;
}

export type EgressService = ReturnType<typeof egressServiceFactory>;

const MAX_RULES = 20_000;

export function egressServiceFactory({ db, audit, applianceHosts, extraAllow, now = () => new Date() }: EgressDeps) {
  let builders: string[] = [];
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };

  const policyRow = db.query(
    "SELECT org_id, mode, default_action, revision, updated_at FROM egress_policies WHERE org_id = ?",
  );
  const rulesOf = db.query(
    "SELECT id, action, target, ports, comment, created_at FROM egress_rules WHERE org_id = ? ORDER BY created_at, id",
  );
  const hostRow = db.query("SELECT * FROM egress_runner_hosts WHERE id = ?");

  function ensurePolicy(orgId: string): void {
    db.query("INSERT INTO egress_policies (org_id, updated_at) VALUES (?, ?) ON CONFLICT (org_id) DO NOTHING").run(
      orgId,
      now().toISOString(),
    );
  }
  function bump(orgId: string): void {
    ensurePolicy(orgId);
    db.query("UPDATE egress_policies SET revision = revision + 1, updated_at = ? WHERE org_id = ?").run(
      now().toISOString(),
      orgId,
    );
  }
  const toHost = (r: Record<string, unknown>): RunnerHost => ({
    id: r.id as string,
    org_id: r.org_id as string,
    name: r.name as string,
    scopes: JSON.parse(r.scopes as string) as string[],
    created_at: r.created_at as string,
    last_seen_at: (r.last_seen_at as string | null) ?? null,
    applied_revision: (r.applied_revision as string | null) ?? null,
    applied_ok: r.applied_ok === null || r.applied_ok === undefined ? null : r.applied_ok === 1,
    applied_error: (r.applied_error as string | null) ?? null,
    applied_at: (r.applied_at as string | null) ?? null,
    dns_resolvers: r.applied_dns ? (JSON.parse(r.applied_dns as string) as string[]) : [],
    local_scopes: r.local_scopes ? (JSON.parse(r.local_scopes as string) as string[]) : null,
  });

  function normalizeScopes(scopes: string[]): string[] {
    if (scopes.length === 0) throw new InvalidInputError("a runner host needs at least one scope");
    const out: string[] = [];
    for (const s of scopes) {
      const p = parseScope(s);
      if (typeof p === "string") throw new InvalidInputError(p);
      const t = scopeText(p);
      if (!out.includes(t)) out.push(t);
    }
    return out;
  }

  function canonicalTarget(raw: string): string {
    const t = parseTarget(raw);
    if (typeof t === "string") throw new InvalidInputError(t, [{ pointer: "/target", detail: t }]);
    return targetText(t);
  }
  function canonicalPorts(raw: string | null | undefined): string | null {
    if (raw === undefined || raw === null || raw.trim() === "") return null;
    const p = parsePorts(raw);
    if (typeof p === "string") throw new InvalidInputError(p, [{ pointer: "/ports", detail: p }]);
    return portsText(p);
  }

  const service = {
    getPolicy(orgId: string): EgressPolicy {
      const p = policyRow.get(orgId) as Omit<EgressPolicy, "rules"> | null;
      return {
        org_id: orgId,
        mode: p?.mode ?? "off",
        default_action: p?.default_action ?? "allow",
        revision: p?.revision ?? 0,
        updated_at: p?.updated_at ?? null,
        rules: rulesOf.all(orgId) as EgressRule[],
      };
    },

    setMode(orgId: string, mode: Mode, actor: Actor): EgressPolicy {
      db.transaction(() => {
        bump(orgId);
        db.query("UPDATE egress_policies SET mode = ? WHERE org_id = ?").run(mode, orgId);
        audit.record({ orgId, actor, action: "egress.mode", target: orgId, details: { mode } });
      })();
      wake();
      return service.getPolicy(orgId);
    },

    setDefault(orgId: string, action: RuleAction, actor: Actor): EgressPolicy {
      db.transaction(() => {
        bump(orgId);
        db.query("UPDATE egress_policies SET default_action = ? WHERE org_id = ?").run(action, orgId);
        audit.record({ orgId, actor, action: "egress.default", target: orgId, details: { default_action: action } });
      })();
      wake();
      return service.getPolicy(orgId);
    },

    addRule(
      orgId: string,
      input: { action: RuleAction; target: string; ports?: string | null; comment?: string },
      actor: Actor,
    ): EgressRule {
      const rule: EgressRule = {
        id: newId("egr"),
        action: input.action,
        target: canonicalTarget(input.target),
        ports: canonicalPorts(input.ports),
        comment: input.comment ?? "",
        created_at: now().toISOString(),
      };
      const ports = rule.ports;
      try {
        db.transaction(() => {
          const n = (db.query("SELECT count(*) AS n FROM egress_rules WHERE org_id = ?").get(orgId) as { n: number }).n;
          if (n >= MAX_RULES) throw new InvalidInputError(`an organization has at most ${MAX_RULES} egress rules`);
          db.query(
            "INSERT INTO egress_rules (id, org_id, action, target, ports, comment, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
          ).run(rule.id, orgId, rule.action, rule.target, rule.ports, rule.comment, rule.created_at);
          bump(orgId);
          audit.record({
            orgId,
            actor,
            action: "egress.rule.add",
            target: rule.id,
            details: { action: rule.action, target: rule.target, ports: rule.ports },
          });
        })();
      } catch (e) {
        if (isUniqueViolation(e))
          throw new ConflictError(
            `the rule '${rule.action} ${rule.target}${ports ? ` ports ${ports}` : ""}' already exists`,
          );
        throw e;
      }
      wake();
      return rule;
    },

    /** Changes a rule in place (its id and creation time stay); fields left out keep their value. */
    updateRule(
      orgId: string,
      id: string,
      patch: { action?: RuleAction; target?: string; ports?: string | null; comment?: string },
      actor: Actor,
    ): EgressRule {
      const before = (
        db
          .query("SELECT id, action, target, ports, comment, created_at FROM egress_rules WHERE org_id = ? AND id = ?")
          .all(orgId, id) as EgressRule[]
      )[0];
      if (!before) throw new NotFoundError(`no egress rule ${id}`);
      const after: EgressRule = {
        ...before,
        action: patch.action ?? before.action,
        target: patch.target === undefined ? before.target : canonicalTarget(patch.target),
        ports: patch.ports === undefined ? before.ports : canonicalPorts(patch.ports),
        comment: patch.comment ?? before.comment,
      };
      try {
        db.transaction(() => {
          db.query("UPDATE egress_rules SET action = ?, target = ?, ports = ?, comment = ? WHERE id = ?").run(
            after.action,
            after.target,
            after.ports,
            after.comment,
            id,
          );
          bump(orgId);
          audit.record({
            orgId,
            actor,
            action: "egress.rule.update",
            target: id,
            details: {
              before: { action: before.action, target: before.target, ports: before.ports },
              after: { action: after.action, target: after.target, ports: after.ports },
            },
          });
        })();
      } catch (e) {
        if (isUniqueViolation(e))
          throw new ConflictError(
            `the rule '${after.action} ${after.target}${after.ports ? ` ports ${after.ports}` : ""}' already exists`,
          );
        throw e;
      }
      wake();
      return after;
    },

    /** Removes a rule by id, or by its target (every rule with that target). */
    removeRule(orgId: string, ref: string, actor: Actor): EgressRule[] {
      const parsed = parseTarget(ref);
      const canonical = typeof parsed === "string" ? ref : targetText(parsed);
      const rows = db
        .query(
          "SELECT id, action, target, ports, comment, created_at FROM egress_rules WHERE org_id = ? AND (id = ? OR target = ?)",
        )
        .all(orgId, ref, canonical) as EgressRule[];
      if (rows.length === 0) throw new NotFoundError(`no egress rule ${ref}`);
      db.transaction(() => {
        for (const r of rows) db.query("DELETE FROM egress_rules WHERE id = ?").run(r.id);
        bump(orgId);
        audit.record({
          orgId,
          actor,
          action: "egress.rule.remove",
          target: rows.map((r) => r.id).join(","),
          details: { target: canonical },
        });
      })();
      wake();
      return rows;
    },

    // --- runner hosts ---

    /** Registers a runner host; returns its agent token once (only its SHA-256 is stored). */
    addHost(
      orgId: string,
      input: { name: string; scopes: string[] },
      actor: Actor,
    ): { host: RunnerHost; token: string } {
      const scopes = normalizeScopes(input.scopes);
      const token = generateToken("agent");
      const id = newId("rnh");
      try {
        db.transaction(() => {
          db.query(
            "INSERT INTO egress_runner_hosts (id, org_id, name, scopes, token_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?)",
          ).run(id, orgId, input.name, JSON.stringify(scopes), hashToken(token), now().toISOString());
          audit.record({ orgId, actor, action: "egress.host.add", target: id, details: { name: input.name, scopes } });
        })();
      } catch (e) {
        if (isUniqueViolation(e))
          throw new ConflictError(`a runner host named '${input.name}' already exists in this organization`);
        throw e;
      }
      return { host: service.getHost(id), token };
    },

    /** The runner host whose agent token hashes to `sha256`, or null (authentication). */
    findByAgentTokenHash(sha256: Uint8Array): { id: string; org_id: string } | null {
      return db.query("SELECT id, org_id FROM egress_runner_hosts WHERE token_sha256 = ?").get(sha256) as {
        id: string;
        org_id: string;
      } | null;
    },

    getHost(id: string): RunnerHost {
      const r = hostRow.get(id) as Record<string, unknown> | null;
      if (!r) throw new NotFoundError("no such runner host");
      return toHost(r);
    },

    /** Runner hosts the administrator designated local: enforced by `serve` itself (egress.local_agent). */
    localHostIds(): string[] {
      return (
        db.query("SELECT id FROM egress_runner_hosts WHERE local_scopes IS NOT NULL ORDER BY created_at, id").all() as {
          id: string;
        }[]
      ).map((r) => r.id);
    },

    /** Every runner host designated local, of every organization (the administrator's view). */
    listLocalHosts(): RunnerHost[] {
      return (
        db
          .query("SELECT * FROM egress_runner_hosts WHERE local_scopes IS NOT NULL ORDER BY created_at, id")
          .all() as Record<string, unknown>[]
      ).map(toHost);
    },

    /** Runner hosts named `local` that are not designated: before designation existed, the name alone made them local. */
    undesignatedNamedLocal(): RunnerHost[] {
      return (
        db.query("SELECT * FROM egress_runner_hosts WHERE name = 'local' AND local_scopes IS NULL").all() as Record<
          string,
          unknown
        >[]
      ).map(toHost);
    },

    /** The administrator designates a runner host local, with the scopes enforced on the appliance host. */
    designateLocal(id: string, scopes: string[], actor: Actor): RunnerHost {
      const h = service.getHost(id);
      const norm = normalizeScopes(scopes);
      db.transaction(() => {
        db.query("UPDATE egress_runner_hosts SET local_scopes = ? WHERE id = ?").run(JSON.stringify(norm), id);
        audit.record({
          orgId: h.org_id,
          actor,
          action: "egress.host.local",
          target: id,
          details: { local_scopes: norm },
        });
      })();
      wake();
      return service.getHost(id);
    },

    /** Ends a designation: `serve` no longer enforces the host's policy on the appliance host. */
    clearLocal(id: string, actor: Actor): void {
      const h = service.getHost(id);
      if (h.local_scopes === null) throw new NotFoundError("that runner host is not designated local");
      db.transaction(() => {
        db.query("UPDATE egress_runner_hosts SET local_scopes = NULL WHERE id = ?").run(id);
        audit.record({
          orgId: h.org_id,
          actor,
          action: "egress.host.unlocal",
          target: id,
          details: { local_scopes: h.local_scopes },
        });
      })();
      wake();
    },

    listHosts(orgId: string): RunnerHost[] {
      return (
        db.query("SELECT * FROM egress_runner_hosts WHERE org_id = ? ORDER BY name").all(orgId) as Record<
          string,
          unknown
        >[]
      ).map(toHost);
    },

    setHostScopes(id: string, scopes: string[], actor: Actor): RunnerHost {
      const h = service.getHost(id);
      const norm = normalizeScopes(scopes);
      db.transaction(() => {
        db.query("UPDATE egress_runner_hosts SET scopes = ? WHERE id = ?").run(JSON.stringify(norm), id);
        audit.record({ orgId: h.org_id, actor, action: "egress.host.scopes", target: id, details: { scopes: norm } });
      })();
      wake();
      return service.getHost(id);
    },

    /** Removes the host and revokes its agent token (the agent keeps its last policy until uninstalled). */
    removeHost(id: string, actor: Actor): void {
      const h = service.getHost(id);
      db.transaction(() => {
        db.query("DELETE FROM egress_runner_hosts WHERE id = ?").run(id);
        audit.record({ orgId: h.org_id, actor, action: "egress.host.remove", target: id, details: { name: h.name } });
      })();
    },

    // --- what agents pull and report ---

    /** The builders' addresses: allowed on every runner host, pushed to agents at once. */
    setBuilderAddresses(addrs: readonly string[]): void {
      const next = [
        ...new Set(
          addrs.map((a) => {
            const t = parseTarget(a);
            if (typeof t === "string" || t.kind !== "cidr")
              throw new InvalidInputError(`builder address '${a}' is not an IP address or CIDR`);
            return t.cidr;
          }),
        ),
      ].sort();
      if (next.join() === builders.join()) return;
      builders = next;
      wake();
    },

    /** `local`: for `serve`'s own agent, whose scopes are the administrator's (none once undesignated). */
    agentPolicy(hostId: string, opts: { local?: boolean } = {}): AgentPolicy {
      const h = service.getHost(hostId);
      const p = service.getPolicy(h.org_id);
      const body = {
        org_id: h.org_id,
        host_id: h.id,
        mode: p.mode,
        default_action: p.default_action,
        rules: p.rules.map((r) => ({ action: r.action, target: r.target, ports: r.ports })),
        scopes: opts.local ? (h.local_scopes ?? []) : h.scopes,
        always_allow: [...new Set([...builders, ...extraAllow])],
        always_allow_hosts: [...new Set(applianceHosts)],
      };
      const etag = new Bun.CryptoHasher("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 24);
      return { etag, ...body };
    },

    /** Answers at once when the host's policy differs from `etag`, else when it changes or after `waitMs`. */
    async waitForPolicy(
      hostId: string,
      etag: string | null,
      waitMs: number,
      signal?: AbortSignal,
      opts: { local?: boolean } = {},
    ): Promise<AgentPolicy> {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const p = service.agentPolicy(hostId, opts);
        const left = deadline - Date.now();
        if (p.etag !== etag || left <= 0 || signal?.aborted) return p;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, left);
          function done() {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            resolve();
          }
          waiters.push(done);
          signal?.addEventListener("abort", done);
        });
      }
    },

    touchHost(hostId: string): void {
      db.query("UPDATE egress_runner_hosts SET last_seen_at = ? WHERE id = ?").run(now().toISOString(), hostId);
    },

    reportStatus(
      hostId: string,
      status: { etag: string; ok: boolean; error?: string | null; dns_resolvers?: string[] },
    ): void {
      const dns = (status.dns_resolvers ?? []).filter((a) => familyOf(a) !== null);
      db.query(
        "UPDATE egress_runner_hosts SET applied_revision = ?, applied_ok = ?, applied_error = ?, applied_at = ?, last_seen_at = ?, applied_dns = coalesce(?, applied_dns) WHERE id = ?",
      ).run(
        status.etag,
        status.ok ? 1 : 0,
        status.error ?? null,
        now().toISOString(),
        now().toISOString(),
        status.dns_resolvers ? JSON.stringify(dns) : null,
        hostId,
      );
    },

    /** `local`: from `serve`'s own agent; only events within the administrator's scopes are kept. */
    reportEvents(hostId: string, reported: EventReport[], opts: { local?: boolean } = {}): number {
      const h = service.getHost(hostId);
      const events = opts.local ? reported.filter((e) => (h.local_scopes ?? []).includes(e.scope)) : reported;
      const up = db.query(
        `INSERT INTO egress_events (org_id, host_id, action, scope, source, dst, port, protocol, hostname, count, first_at, last_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (host_id, action, scope, source, dst, port, protocol) DO UPDATE SET
           count = count + excluded.count, last_at = max(last_at, excluded.last_at), hostname = coalesce(excluded.hostname, hostname)`,
      );
      db.transaction(() => {
        for (const e of events)
          up.run(
            h.org_id,
            hostId,
            e.action,
            e.scope,
            e.source,
            e.dst,
            e.port,
            e.protocol,
            e.hostname ?? null,
            e.count,
            e.at,
            e.at,
          );
      })();
      return events.length;
    },

    /**
     * The events grouped by destination and port with their counts, newest first, each with the
     * allow rule that lets it through now (deny rules win, as on the runner hosts).
     */
    eventDestinations(orgId: string, limit = 500): EgressDestination[] {
      const rows = db
        .query(
          `SELECT coalesce(hostname, dst) AS destination, port, group_concat(DISTINCT protocol) AS protocols,
             sum(CASE WHEN action = 'blocked' THEN count ELSE 0 END) AS blocked,
             sum(CASE WHEN action = 'would-block' THEN count ELSE 0 END) AS would_block,
             count(DISTINCT host_id) AS hosts, min(first_at) AS first_at, max(last_at) AS last_at
           FROM egress_events WHERE org_id = ? GROUP BY destination, port ORDER BY max(last_at) DESC LIMIT ?`,
        )
        .all(orgId, limit) as (Omit<EgressDestination, "protocols" | "allowed_by"> & { protocols: string })[];
      const rules = service.getPolicy(orgId).rules;
      return rows.map((r) => {
        const covering = rules.filter((rule) => ruleCovers(rule, r.destination, r.port));
        const denied = covering.some((rule) => rule.action === "deny");
        return {
          ...r,
          protocols: r.protocols.split(",").sort(),
          allowed_by: denied ? null : (covering.find((rule) => rule.action === "allow")?.id ?? null),
        };
      });
    },

    listEvents(orgId: string, filter: { action?: EventAction } = {}, limit = 500): EgressEvent[] {
      return db
        .query(
          `SELECT action, host_id, scope, source, dst, port, protocol, hostname, count, first_at, last_at FROM egress_events WHERE org_id = ?1 ${filter.action ? "AND action = ?3" : "AND ?3 IS NULL"} ORDER BY last_at DESC LIMIT ?2`,
        )
        .all(orgId, limit, filter.action ?? null) as EgressEvent[];
    },
  };
  return service;
}
