/**
 * @module test/support/egress/agent-child
 * The real egress agent, run as its own process inside the runner namespace
 * (`ip netns exec RUNNER bun agent-child.ts OPTIONS-JSON`), so the test can SIGKILL and restart
 * it. Its policy source is stdio instead of HTTPS (the runner namespace cannot reach the test's
 * appliance): the parent writes each policy the appliance's long poll returns as a JSON line on
 * stdin; the agent's status and event reports come back as JSON lines on stdout. Everything
 * else — sets, chains, the hosts file, NFLOG, the pinning DNS responder — is the production code,
 * in the namespace. The hosts file is /etc/netns/<runner>/hosts, which `ip netns exec` mounts
 * over /etc/hosts for every process it starts in the runner namespace (curl, getent).
 */
import { startEgressAgent, type PolicySource } from "../../../src/agent/agent.ts";
import { hostExec } from "../../../src/host/exec.ts";
import { nflogSource } from "../../../src/agent/nflog.ts";
import type { AgentPolicy } from "../../../src/wire/egress/policy.ts";
import { createLogger } from "../../../src/log/logger.ts";

const opts = JSON.parse(process.argv[2]!) as {
  hostsFile: string;
  stateFile: string;
  graceMs: number;
  nflogGroup: number;
  dnsListen: string[];
  watchdogMs: number;
};
let latest: AgentPolicy | null = null;
let wake = null as (() => void) | null;
const out = (m: unknown) => process.stdout.write(`${JSON.stringify(m)}\n`);

const source: PolicySource = {
  async fetch(etag, waitSeconds, signal) {
    const deadline = Date.now() + waitSeconds * 1000;
    while (!latest || latest.etag === etag) {
      if (signal.aborted) throw new Error("stopped");
      if (Date.now() > deadline && latest) return latest;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
    return latest;
  },
  async reportStatus(s) {
    out({ status: s });
  },
  async reportEvents(events) {
    out({ events });
  },
};

const agent = await startEgressAgent({
  source,
  exec: hostExec(),
  log: createLogger({ level: "debug", format: "json" }),
  hostsFile: opts.hostsFile,
  stateFile: opts.stateFile,
  nflogGroup: opts.nflogGroup,
  graceMs: opts.graceMs,
  dnsListen: opts.dnsListen,
  drops: nflogSource(opts.nflogGroup),
  watchdogMs: opts.watchdogMs,
});
out({ started: true, policy: agent.policy()?.etag ?? null });

const decoder = new TextDecoder();
let rest = "";
for await (const chunk of Bun.stdin.stream()) {
  rest += decoder.decode(chunk);
  let i: number;
  while ((i = rest.indexOf("\n")) >= 0) {
    latest = JSON.parse(rest.slice(0, i)) as AgentPolicy;
    rest = rest.slice(i + 1);
    wake?.();
  }
}
