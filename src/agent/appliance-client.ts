/**
 * @module agent/appliance-client
 * The agent's side of the appliance API: its policy by long poll, apply status and events,
 * with an agent token and the appliance's CA. Talks only over the REST API, in the shapes of
 * src/wire/egress, never to the server's services.
 */
import { isIP } from "node:net";
import type { AgentPolicy } from "../wire/egress/policy.ts";
import type { PolicySource } from "./sources.ts";
import { resolveAll, systemNameservers } from "./dns.ts";
import { SlipwayError } from "../errors.ts";
import { VERSION } from "../version.ts";

export function httpPolicySource({
  server,
  token,
  caPem,
}: {
  server: string;
  token: string;
  caPem?: string | undefined;
}): PolicySource {
  const base = server.replace(/\/+$/, "");
  const headers = {
    authorization: `Bearer ${token}`,
    accept: "application/json",
    "user-agent": `slipway-agent/${VERSION}`,
  };
  const tls = caPem ? { tls: { ca: caPem } } : {};
  async function call(method: string, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const r = await fetch(base + path, {
      method,
      headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
      signal,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...tls,
    });
    if (!r.ok) throw new SlipwayError(`${method} ${path}: HTTP ${r.status} ${(await r.text()).slice(0, 300)}`);
    return r;
  }
  return {
    async fetch(etag, waitSeconds, signal) {
      const q = new URLSearchParams({ wait: String(waitSeconds), ...(etag ? { etag } : {}) });
      const r = await call(
        "GET",
        `/api/v1/egress/agent/policy?${q}`,
        undefined,
        AbortSignal.any([signal, AbortSignal.timeout((waitSeconds + 15) * 1000)]),
      );
      return (await r.json()) as AgentPolicy;
    },
    async reportStatus(s) {
      await call("POST", "/api/v1/egress/agent/status", s, AbortSignal.timeout(10_000));
    },
    async reportEvents(events) {
      await call("POST", "/api/v1/egress/agent/events", { events }, AbortSignal.timeout(10_000));
    },
  };
}

/** The appliance's addresses (always allowed, so the agent never cuts itself off): the server
 * URL's host when it is an address, else what it resolves to now (none when it does not). */
export async function applianceAddresses(server: string): Promise<string[]> {
  const host = new URL(server).hostname.replace(/^\[|\]$/g, "");
  return isIP(host)
    ? [host]
    : await resolveAll(host, systemNameservers()).then(
        (r) => r.addrs,
        () => [],
      );
}
