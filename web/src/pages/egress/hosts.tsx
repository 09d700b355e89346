/**
 * @module web/pages/egress/hosts
 * An organization's runner hosts: where its policy is enforced, with their scopes and what each
 * agent last applied; owners add one (its agent token shown once), change its scopes, remove it.
 */
import { useState } from "preact/hooks";
import type { HostCreatedView, HostView } from "../../../../src/egress/models.ts";
import { api, seg } from "../../api.ts";
import { Field, FormError, formValues, ShownOnce, useAction, RemoveButton } from "../../components/forms.tsx";
import { Ago } from "../../components/format.tsx";

const scopeList = (text: string) =>
  text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

const SCOPE_HINT = "comma-separated: host, uid:N, docker:NETWORK, docker:*, bridge:IFACE, subnet:CIDR";

function Applied(props: { host: HostView }) {
  const h = props.host;
  if (h.applied_ok === null) return <span>not yet</span>;
  return (
    <>
      <span class={`status status-${h.applied_ok ? "pass" : "fail"}`}>{h.applied_ok ? "applied" : "failed"}</span>{" "}
      <Ago at={h.applied_at} />
      {h.applied_error && <small class="field-error"> {h.applied_error}</small>}
    </>
  );
}

function HostRow(props: { org: string; host: HostView; owner: boolean; onChange: () => Promise<void> }) {
  const { host } = props;
  const [editing, setEditing] = useState(false);
  const save = useAction(async (scopes: string[]) => {
    await api.put(`/api/v1/orgs/${seg(props.org)}/egress/hosts/${seg(host.id)}/scopes`, { scopes });
    await props.onChange();
    setEditing(false);
  });
  const id = `scopes-${host.id}`;
  return (
    <tr>
      <td>{host.name}</td>
      <td>
        {editing ? (
          <form
            class="inline-form"
            aria-label={`Scopes of ${host.name}`}
            onSubmit={(e) => save.run(scopeList(formValues(e).scopes ?? ""))}
          >
            <div class="field">
              <label for={id}>Scopes of {host.name}</label>
              <input
                id={id}
                name="scopes"
                required
                defaultValue={host.scopes.join(", ")}
                aria-describedby={`${id}-hint`}
              />
              <small id={`${id}-hint`} class="hint">
                {SCOPE_HINT}
              </small>
            </div>
            <FormError error={save.error} />
            <div class="actions">
              <button type="submit" class="primary" disabled={save.busy}>
                Save scopes
              </button>
              <button type="button" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <span class="mono">{host.scopes.join(", ")}</span>
        )}
      </td>
      <td>
        <Ago at={host.last_seen_at} />
      </td>
      <td>
        <Applied host={host} />
      </td>
      {props.owner && (
        <td>
          <div class="actions">
            {!editing && (
              <button type="button" onClick={() => setEditing(true)}>
                Edit scopes of {host.name}
              </button>
            )}
            <RemoveButton
              label={`Remove ${host.name}`}
              question={`Remove the runner host ${host.name}? Its agent token stops working; the agent keeps its last policy until it is uninstalled.`}
              confirmLabel="Remove runner host"
              path={`/api/v1/orgs/${seg(props.org)}/egress/hosts/${seg(host.id)}`}
              onRemoved={props.onChange}
            />
          </div>
        </td>
      )}
    </tr>
  );
}

function AddHost(props: { org: string; onChange: () => Promise<void> }) {
  const [created, setCreated] = useState<HostCreatedView | null>(null);
  const add = useAction(async (form: HTMLFormElement, v: Record<string, string>) => {
    const r = await api.post<HostCreatedView>(`/api/v1/orgs/${seg(props.org)}/egress/hosts`, {
      name: v.name ?? "",
      scopes: scopeList(v.scopes ?? ""),
    });
    setCreated(r);
    form.reset();
    await props.onChange();
  });
  return (
    <>
      <form
        class="inline-form"
        aria-label="New runner host"
        onSubmit={(e) => add.run(e.currentTarget as HTMLFormElement, formValues(e))}
      >
        <Field label="Host name" name="name" required error={add.error} placeholder="ci-1" />
        <Field label="Scopes" name="scopes" required error={add.error} hint={SCOPE_HINT} />
        <FormError error={add.error} />
        <button type="submit" class="primary" disabled={add.busy}>
          Add runner host
        </button>
      </form>
      {created && (
        <div>
          <p>
            Runner host {created.host.name} added. Run <code>slipway agent</code> on it with this token:
          </p>
          <ShownOnce label="Agent token" value={created.token} />
        </div>
      )}
    </>
  );
}

export function Hosts(props: { org: string; hosts: HostView[]; owner: boolean; onChange: () => Promise<void> }) {
  return (
    <section aria-labelledby="egress-hosts">
      <h2 id="egress-hosts">Runner hosts</h2>
      {props.hosts.length === 0 ? (
        <p>No runner host yet: the policy is enforced nowhere.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Runner hosts</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Scopes</th>
                <th scope="col">Last seen</th>
                <th scope="col">Policy applied</th>
                {props.owner && <th scope="col">Change</th>}
              </tr>
            </thead>
            <tbody>
              {props.hosts.map((h) => (
                <HostRow key={h.id} org={props.org} host={h} owner={props.owner} onChange={props.onChange} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {props.owner && <AddHost org={props.org} onChange={props.onChange} />}
    </section>
  );
}
