/**
 * @module web/pages/egress/egress
 * `/orgs/:org/egress`: the organization's egress policy for its CI runners. The mode and the
 * default action (saved on change), the rules, the runner hosts and the connections they refused
 * or would have refused. Owners change; members read (no change control shown to them).
 */
import { useState } from "preact/hooks";
import type { DestinationView, HostView, PolicyView } from "../../../../src/egress/models.ts";
import { api, seg } from "../../api.ts";
import { FormError, useAction } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { OrgFrame } from "../../frames/org.tsx";
import { Events } from "./events.tsx";
import { Hosts } from "./hosts.tsx";
import { Rules } from "./rules.tsx";

const MODES = [
  ["off", "Off: nothing is filtered"],
  ["monitor", "Monitor: connections the policy would refuse are let through and reported"],
  ["enforce", "Enforce: connections the policy refuses are blocked and reported"],
] as const;

/** Mode and default action: each saved as soon as it changes; the API's message when refused. */
function Settings(props: { org: string; policy: PolicyView; owner: boolean; onSaved: (p: PolicyView) => void }) {
  const { policy } = props;
  const base = `/api/v1/orgs/${seg(props.org)}/egress`;
  const save = useAction(async (what: "mode" | "default", value: string) => {
    props.onSaved(await api.put<PolicyView>(`${base}/${what}`, what === "mode" ? { mode: value } : { action: value }));
  });
  // The mode chosen while the API answers: the radio stays where it was clicked (and returns to
  // the saved mode, with the API's message, if the change is refused).
  const [pendingMode, setPendingMode] = useState<string | null>(null);
  const shownMode = pendingMode ?? policy.mode;
  if (!props.owner)
    return (
      <section aria-labelledby="egress-policy">
        <h2 id="egress-policy">Policy</h2>
        <p>
          Mode: <strong>{policy.mode}</strong>. Default action: <strong>{policy.default_action}</strong>.
        </p>
      </section>
    );
  return (
    <section aria-labelledby="egress-policy">
      <h2 id="egress-policy">Policy</h2>
      <fieldset>
        <legend>Mode</legend>
        {MODES.map(([mode, label]) => (
          <div key={mode} class="radio">
            <input
              type="radio"
              id={`mode-${mode}`}
              name="mode"
              value={mode}
              checked={shownMode === mode}
              disabled={save.busy}
              onChange={async () => {
                setPendingMode(mode);
                await save.run("mode", mode);
                setPendingMode(null);
              }}
            />
            <label for={`mode-${mode}`}>{label}</label>
          </div>
        ))}
      </fieldset>
      <div class="field">
        <label for="egress-default">Default action (for every destination no rule names)</label>
        <select
          id="egress-default"
          disabled={save.busy}
          onChange={(e) => save.run("default", (e.target as HTMLSelectElement).value)}
        >
          <option value="allow" selected={policy.default_action === "allow"}>
            allow
          </option>
          <option value="deny" selected={policy.default_action === "deny"}>
            deny
          </option>
        </select>
      </div>
      <FormError error={save.error} />
      <p class="hint" role="status">
        Revision {policy.revision}
        {policy.updated_at ? `, changed ${new Date(policy.updated_at).toLocaleString()}` : ""}.
      </p>
    </section>
  );
}

function EgressBody(props: { org: string; owner: boolean }) {
  const base = `/api/v1/orgs/${seg(props.org)}/egress`;
  const policy = useApi<PolicyView>(base);
  const hosts = useApi<HostView[]>(`${base}/hosts`);
  const destinations = useApi<DestinationView[]>(`${base}/events/destinations`);
  const reloadPolicy = async () => {
    await Promise.all([policy.reload(), destinations.reload()]);
  };
  return (
    <Loaded from={policy}>
      {(p) => (
        <>
          <Settings
            org={props.org}
            policy={p}
            owner={props.owner}
            onSaved={(next) => {
              policy.set(next);
            }}
          />
          <Rules org={props.org} policy={p} owner={props.owner} onChange={reloadPolicy} />
          <Loaded from={destinations}>
            {(d) => <Events org={props.org} destinations={d} owner={props.owner} onChange={reloadPolicy} />}
          </Loaded>
          <Loaded from={hosts}>
            {(h) => <Hosts org={props.org} hosts={h} owner={props.owner} onChange={hosts.reload} />}
          </Loaded>
        </>
      )}
    </Loaded>
  );
}

export function EgressPage(props: { org: string }) {
  return (
    <OrgFrame org={props.org} title="Egress">
      {(org, owner) => <EgressBody org={org.slug} owner={owner} />}
    </OrgFrame>
  );
}
