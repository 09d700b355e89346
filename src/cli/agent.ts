/**
 * @module cli/agent
 * `slipway agent --server URL --token-file F [--scope S]…`: enforces this runner host's egress
 * policy (see src/agent/agent.ts), as a service (packaging/systemd/slipway-agent.service).
 * `slipway agent uninstall` removes exactly what it added: jumps, chain, sets, the hosts block.
 * Agent-side: only the options are read here; the agent itself is src/agent, and this command
 * imports nothing of the server's services. Under systemd (Type=notify) it says READY=1 once its
 * first policy (fetched, or the saved one) is in the kernel, and pings the watchdog.
 */
import { readFileSync } from "node:fs";
import {
  applianceAddresses,
  dockerNetworks,
  httpPolicySource,
  nflogSource,
  startEgressAgent,
  uninstallEgress,
} from "../agent/index.ts";
import { hostExec } from "../host/exec.ts";
import { parseScope } from "../wire/egress/scopes.ts";
import { UsageError } from "../errors.ts";
import { createLogger } from "../log/logger.ts";
import { startWatchdog, stderrIsJournal, systemdNotifier, watchdogIntervalMs } from "../systemd/index.ts";
import { EXIT_OK, type Command } from "./command.ts";

const DEFAULT_STATE = "/var/lib/slipway-agent/policy.json";

export const agentCommand: Command = {
  name: "agent",
  summary: "enforce this runner host's egress policy (iptables, ipsets, pinned names); uninstall removes it",
  usage: [
    "slipway agent --server URL (--token T | --token-file F) [--cacert FILE] [--scope S]... [--dns-listen ADDR]...",
    "       slipway agent uninstall [--hosts-file F] [--state-file F]",
  ].join("\n"),
  options: {
    scope: { type: "string", multiple: true },
    "hosts-file": { type: "string" },
    "state-file": { type: "string" },
    "nflog-group": { type: "string" },
    "grace-seconds": { type: "string" },
    "dns-listen": { type: "string", multiple: true },
  },
  optionHelp: {
    scope:
      "host | uid:N | docker:NETWORK | docker:* | bridge:IFACE | subnet:CIDR (repeatable; default: the scopes registered for this host)",
    "hosts-file": "where hostnames are pinned (default /etc/hosts)",
    "state-file": `the last good policy, used while the appliance is unreachable (default ${DEFAULT_STATE})`,
    "nflog-group": "NFLOG group for drops and would-be drops (default 5317)",
    "grace-seconds": "how long an address a name no longer resolves to stays allowed (default 300)",
    "dns-listen": "address for the pinning DNS responder that container scopes use (e.g. the bridge's gateway)",
  },
  positionals: true,
  async run(ctx) {
    const v = ctx.values;
    const hostsFile = (v["hosts-file"] as string | undefined) ?? "/etc/hosts";
    const stateFile = (v["state-file"] as string | undefined) ?? DEFAULT_STATE;
    const log = createLogger({
      level: "info",
      format: ctx.io.isTTY ? "pretty" : "json",
      journalPriority: stderrIsJournal(ctx.env),
    });
    if (ctx.positionals[0] === "uninstall") {
      await uninstallEgress({ exec: hostExec(), hostsFile, stateFile });
      ctx.io.out("removed Slipway's egress jumps, chains, sets and hosts block");
      return EXIT_OK;
    }
    if (ctx.positionals.length > 0) throw new UsageError(`agent: unexpected argument '${ctx.positionals[0]}'`);
    const server = ctx.client.server;
    if (!server) throw new UsageError("agent needs --server URL");
    const token = ctx.client.token; // --token-file (a global option) or SLIPWAY_TOKEN
    if (!token?.startsWith("slw_a_"))
      throw new UsageError("agent needs an agent token (slw_a_…, from 'slipway egress add-host'): --token-file F");
    const scopes = ((v.scope as string[] | undefined) ?? []).map((s) => {
      const p = parseScope(s);
      if (typeof p === "string") throw new UsageError(p);
      return s;
    });
    const num = (k: string, d: number) => {
      const raw = v[k] as string | undefined;
      if (raw === undefined) return d;
      if (!/^\d+$/.test(raw)) throw new UsageError(`--${k} must be a whole number`);
      return Number(raw);
    };
    // The appliance itself is always reachable.
    const serverAddresses = await applianceAddresses(server);
    const nflogGroup = num("nflog-group", 5317);
    const agent = await startEgressAgent({
      source: httpPolicySource({
        server,
        token,
        caPem: ctx.client.cacert ? readFileSync(ctx.client.cacert, "utf8") : undefined,
      }),
      exec: hostExec(),
      log,
      hostsFile,
      stateFile,
      nflogGroup,
      graceMs: num("grace-seconds", 300) * 1000,
      scopes,
      dnsListen: (v["dns-listen"] as string[] | undefined) ?? [],
      serverAddresses,
      docker: dockerNetworks(),
      drops: nflogSource(nflogGroup),
    });
    log.info("egress agent running", { server, scopes: scopes.length ? scopes : "as registered" });
    const notifier = systemdNotifier(ctx.env);
    const wdMs = watchdogIntervalMs(ctx.env);
    // The timer firing proves the event loop turns; the agent's own loops run on the same loop.
    const watchdog =
      notifier.enabled && wdMs !== null ? startWatchdog({ notifier, intervalMs: wdMs, probe: () => {} }) : null;
    let stopping = false;
    const stopped = new Promise<void>((resolve) => {
      const stop = () => {
        stopping = true;
        resolve();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    // Ready once a policy is enforced: units ordered After= this one start with egress in force.
    void (async () => {
      while (!stopping && !agent.compiled()) await Bun.sleep(100);
      if (stopping) return;
      await agent.settled().catch(() => {});
      notifier.notify({ READY: 1, STATUS: `enforcing the egress policy from ${server}` });
    })();
    await stopped;
    notifier.notify({ STOPPING: 1 });
    watchdog?.stop();
    await agent.stop(); // the rules stay in force
    notifier.close();
    return EXIT_OK;
  },
};
