/**
 * @module web/pages/egress/rules
 * An organization's egress rules: the list (deny rules first, since they win over every allow:
 * the order they were added in never matters), adding one, changing one in place, removing one.
 */
import { useState } from "preact/hooks";
import type { PolicyView, RuleView } from "../../../../src/egress/models.ts";
import { api, seg } from "../../api.ts";
import { Field, FormError, formValues, useAction, RemoveButton } from "../../components/forms.tsx";

type RuleInput = { action: string; target: string; ports: string | null; comment: string };

const ruleInput = (v: Record<string, string>): RuleInput => ({
  action: v.action ?? "allow",
  target: v.target ?? "",
  ports: v.ports?.trim() ? v.ports.trim() : null,
  comment: v.comment ?? "",
});

function ActionSelect(props: { id: string; value?: string; label: string }) {
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <select id={props.id} name="action">
        <option value="allow" selected={props.value !== "deny"}>
          allow
        </option>
        <option value="deny" selected={props.value === "deny"}>
          deny
        </option>
      </select>
    </div>
  );
}

/** One rule's row, or its edit form in place. */
function RuleRow(props: { org: string; rule: RuleView; owner: boolean; onChange: () => Promise<void> }) {
  const { rule } = props;
  const [editing, setEditing] = useState(false);
  const save = useAction(async (body: RuleInput) => {
    await api.patch(`/api/v1/orgs/${seg(props.org)}/egress/rules/${seg(rule.id)}`, body);
    await props.onChange();
    setEditing(false);
  });
  if (editing) {
    const id = `edit-${rule.id}`;
    return (
      <tr>
        <td colSpan={5}>
          <form
            class="inline-form"
            aria-label={`Change rule ${rule.target}`}
            onSubmit={(e) => save.run(ruleInput(formValues(e)))}
          >
            <ActionSelect id={`${id}-action`} value={rule.action} label="Action" />
            <div class="field">
              <label for={`${id}-target`}>Target</label>
              <input id={`${id}-target`} name="target" required defaultValue={rule.target} />
            </div>
            <div class="field">
              <label for={`${id}-ports`}>Ports</label>
              <input id={`${id}-ports`} name="ports" defaultValue={rule.ports ?? ""} placeholder="every port" />
            </div>
            <div class="field">
              <label for={`${id}-comment`}>Comment</label>
              <input id={`${id}-comment`} name="comment" defaultValue={rule.comment} />
            </div>
            <FormError error={save.error} />
            <div class="actions">
              <button type="submit" class="primary" disabled={save.busy}>
                Save rule
              </button>
              <button type="button" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </div>
          </form>
        </td>
      </tr>
    );
  }
  return (
    <tr>
      <td>
        <span class={`status status-${rule.action}`}>{rule.action}</span>
      </td>
      <td class="mono">{rule.target}</td>
      <td>{rule.ports ?? "every port"}</td>
      <td>{rule.comment}</td>
      {props.owner && (
        <td>
          <div class="actions">
            <button type="button" aria-label={`Edit rule ${rule.target}`} onClick={() => setEditing(true)}>
              Edit
            </button>
            <RemoveButton
              label={`Remove ${rule.target}`}
              question={`Remove the rule "${rule.action} ${rule.target}"? Runner hosts apply the change within seconds.`}
              confirmLabel="Remove rule"
              path={`/api/v1/orgs/${seg(props.org)}/egress/rules/${seg(rule.id)}`}
              onRemoved={props.onChange}
            />
          </div>
        </td>
      )}
    </tr>
  );
}

function AddRule(props: { org: string; onChange: () => Promise<void> }) {
  const add = useAction(async (form: HTMLFormElement, body: RuleInput) => {
    await api.post(`/api/v1/orgs/${seg(props.org)}/egress/rules`, { ...body, ports: body.ports ?? undefined });
    form.reset();
    await props.onChange();
  });
  return (
    <form
      class="inline-form"
      aria-label="New rule"
      onSubmit={(e) => add.run(e.currentTarget as HTMLFormElement, ruleInput(formValues(e)))}
    >
      <ActionSelect id="new-rule-action" label="Action" />
      <Field
        label="Target"
        name="target"
        required
        error={add.error}
        hint="address, CIDR, host name or *.domain"
        placeholder="registry.example.com"
      />
      <Field label="Ports" name="ports" error={add.error} hint="e.g. 443 or 80,8000-8100; empty: every port" />
      <Field label="Comment" name="comment" error={add.error} />
      <FormError error={add.error} />
      <button type="submit" class="primary" disabled={add.busy}>
        Add rule
      </button>
    </form>
  );
}

export function Rules(props: { org: string; policy: PolicyView; owner: boolean; onChange: () => Promise<void> }) {
  // Deny wins over every allow on the runner hosts: list them first, so the page reads as it acts.
  const rules = [...props.policy.rules].sort((a, b) => (a.action === b.action ? 0 : a.action === "deny" ? -1 : 1));
  return (
    <section aria-labelledby="egress-rules">
      <h2 id="egress-rules">Rules</h2>
      <p class="hint">
        A deny rule wins over every allow rule, whatever their order; anything no rule names gets the default action.
      </p>
      {rules.length === 0 ? (
        <p>No rule yet.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Egress rules</caption>
            <thead>
              <tr>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Ports</th>
                <th scope="col">Comment</th>
                {props.owner && <th scope="col">Change</th>}
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => (
                <RuleRow key={r.id} org={props.org} rule={r} owner={props.owner} onChange={props.onChange} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {props.owner && <AddRule org={props.org} onChange={props.onChange} />}
    </section>
  );
}
