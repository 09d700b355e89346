/**
 * @module web/pages/tokens/token-manager
 * One token manager for the three token pages (a person's own, an organization's, a project's):
 * the list by metadata (secrets are never listed), a form that creates one and shows its secret
 * once, and revoking with confirmation. The API decides who may; `canManage` only hides controls.
 */
import type { TokenCreatedView as Created, TokenMetadataView } from "../../../../src/auth/models.ts";
import type { MemberView } from "../../../../src/orgs/models.ts";
import { useState } from "preact/hooks";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues, ShownOnce, useAction, RemoveButton } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { useSession } from "../../session.tsx";

/** What POST /api/v1/tokens needs besides the name and expiry, per kind of token. */
export type TokenScope = { kind: "user" } | { kind: "org"; org: string } | { kind: "project"; project: string };

/** A datetime-local value ("2026-12-31T23:59", the browser's time zone) as the API's date-time. */
function expiryOf(local: string | undefined): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  // An unreadable value goes to the API as typed, so its own message says what is wrong.
  return Number.isNaN(d.getTime()) ? local : d.toISOString();
}

function tokenState(t: TokenMetadataView): { label: string; cls: string } {
  if (t.revoked_at) return { label: "revoked", cls: "expired" };
  if (t.expires_at && new Date(t.expires_at).getTime() <= Date.now()) return { label: "expired", cls: "expired" };
  return { label: "active", cls: "active" };
}

export function TokenManager(props: {
  /** GET: the tokens to list. */
  listPath: string;
  scope: TokenScope;
  /** Organization whose members' names say who created a token (org and project tokens). */
  orgId?: string;
  canManage: boolean;
  /** Which tokens these are, for the headings ("Project tokens"). */
  noun: string;
  /** List only these kinds (an organization's list from the API has its project tokens too). */
  kinds?: string[];
}) {
  const session = useSession();
  const tokens = useApi<TokenMetadataView[]>(props.listPath);
  const members = useApi<MemberView[]>(props.orgId ? `/api/v1/orgs/${seg(props.orgId)}/members` : null);
  const [created, setCreated] = useState<Created | null>(null);
  const [formKey, setFormKey] = useState(0);
  const create = useAction(async (ev: Event) => {
    const v = formValues(ev);
    const expires_at = expiryOf(v.expires_at);
    const body = { ...props.scope, name: v.name ?? "", ...(expires_at ? { expires_at } : {}) };
    const made = await api.post<Created>("/api/v1/tokens", body);
    setCreated(made);
    setFormKey((k) => k + 1); // a fresh, empty form
    await tokens.reload();
  });

  const who = (userId: string | null) => {
    if (!userId) return "a token";
    if (userId === session.me.id) return "you";
    return members.data?.find((m) => m.user_id === userId)?.username ?? userId;
  };

  return (
    <>
      {props.canManage && (
        <section aria-labelledby="new-token">
          <h2 id="new-token">New {props.noun.toLowerCase().replace(/s$/, "")}</h2>
          <form key={formKey} class="inline-form" onSubmit={(ev) => void create.run(ev)}>
            <Field label="Name" name="name" error={create.error} required />
            <Field
              label="Expires (optional)"
              name="expires_at"
              type="datetime-local"
              error={create.error}
              hint="Empty: never expires"
            />
            <button type="submit" class="primary" disabled={create.busy}>
              Create token
            </button>
          </form>
          <FormError error={create.error} />
          {created && (
            <div>
              <p>
                Created <strong>{created.name}</strong>.
              </p>
              <ShownOnce label="Token" value={created.token} />
            </div>
          )}
        </section>
      )}
      <section aria-labelledby="token-list">
        <h2 id="token-list">{props.noun}</h2>
        <Loaded from={tokens}>
          {(all) => {
            const list = props.kinds ? all.filter((t) => props.kinds?.includes(t.kind)) : all;
            return list.length === 0 ? (
              <p class="empty">No tokens yet.</p>
            ) : (
              <div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Created</th>
                      <th scope="col">Expires</th>
                      <th scope="col">Last used</th>
                      <th scope="col">State</th>
                      {props.canManage && <th scope="col">Actions</th>}
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((t) => {
                      const state = tokenState(t);
                      return (
                        <tr key={t.id}>
                          <td>{t.name}</td>
                          <td>
                            <Ago at={t.created_at} /> by {who(t.created_by)}
                          </td>
                          <td>{t.expires_at ? new Date(t.expires_at).toLocaleString() : "never"}</td>
                          <td>{t.last_used_at ? <Ago at={t.last_used_at} /> : "never"}</td>
                          <td>
                            <span class={`status status-${state.cls}`}>{state.label}</span>
                            {t.revoked_at && (
                              <>
                                {" "}
                                <Ago at={t.revoked_at} />
                              </>
                            )}
                          </td>
                          {props.canManage && (
                            <td>
                              {!t.revoked_at && (
                                <RemoveButton
                                  label={`Revoke ${t.name}`}
                                  question={`Revoke the token ${t.name}? Whatever uses it is refused from now on.`}
                                  confirmLabel="Revoke token"
                                  path={`/api/v1/tokens/${seg(t.id)}`}
                                  onRemoved={tokens.reload}
                                />
                              )}
                            </td>
                          )}
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            );
          }}
        </Loaded>
      </section>
    </>
  );
}
