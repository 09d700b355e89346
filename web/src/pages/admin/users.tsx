/**
 * @module web/pages/admin/users
 * `/admin/users`: every user; create one (optionally an administrator, optionally with a first
 * password); make or unmake an administrator (the API keeps the last one); reset a user's token.
 * A reset revokes every user token they had and shows the new one once: it is asked for when a
 * token is lost or leaked, and leaving the old ones working would defeat it.
 */
import { useState } from "preact/hooks";
import type { TokenCreatedView, UserTokenResetView } from "../../../../src/auth/models.ts";
import type { UserView } from "../../../../src/orgs/models.ts";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { ConfirmButton, Field, FormError, formValues, ShownOnce, useAction } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { useSession } from "../../session.tsx";
import { AdminFrame } from "./frame.tsx";

export function AdminUsers() {
  const session = useSession();
  const users = useApi<UserView[]>(session.me.is_admin ? "/api/v1/users" : null);
  const [issued, setIssued] = useState<{ username: string; token: TokenCreatedView; revoked: number } | null>(null);
  const [created, setCreated] = useState<string | null>(null);
  const create = useAction(async (v: Record<string, string>, form: HTMLFormElement) => {
    const user = await api.post<UserView>("/api/v1/users", {
      username: v.username ?? "",
      is_admin: v.is_admin === "on",
      ...(v.password ? { password: v.password } : {}),
    });
    form.reset();
    setCreated(user.username);
    await users.reload();
  });
  const setAdmin = async (u: UserView, isAdmin: boolean) => {
    await api.patch<UserView>(`/api/v1/users/${seg(u.id)}`, { is_admin: isAdmin });
    await users.reload();
    if (u.id === session.me.id) await session.refresh();
  };
  const reset = async (u: UserView) => {
    const r = await api.post<UserTokenResetView>(`/api/v1/users/${seg(u.id)}/token`);
    setIssued({ username: u.username, token: r, revoked: r.revoked.length });
  };
  return (
    <AdminFrame title="Users">
      <section aria-labelledby="new-user">
        <h2 id="new-user">New user</h2>
        <form
          aria-label="New user"
          class="inline-form"
          onSubmit={(ev) => {
            setCreated(null);
            void create.run(formValues(ev), ev.currentTarget as HTMLFormElement);
          }}
        >
          <Field label="Username" name="username" error={create.error} required autoComplete="off" />
          <Field
            label="Initial password (optional)"
            name="password"
            type="password"
            error={create.error}
            autoComplete="new-password"
          />
          <div class="field">
            <label class="check">
              <input type="checkbox" name="is_admin" /> Administrator
            </label>
          </div>
          <button type="submit" class="primary" disabled={create.busy}>
            Create user
          </button>
        </form>
        <FormError error={create.error} />
        {created && (
          <p role="status">
            Created <strong>{created}</strong>. Add them to an organization from its Members page.
          </p>
        )}
      </section>
      {issued && (
        <section aria-labelledby="issued-token">
          <h2 id="issued-token">New token for {issued.username}</h2>
          <p>
            {issued.revoked === 0
              ? "They had no working token."
              : `Their ${issued.revoked} earlier token${issued.revoked === 1 ? " was" : "s were"} revoked.`}{" "}
            Give them this one over a safe channel.
          </p>
          <ShownOnce label="Token" value={issued.token.token} />
        </section>
      )}
      <h2>Every user</h2>
      <Loaded from={users}>
        {(list) => (
          <div class="table-wrap admin-table">
            <table aria-label="Users">
              <thead>
                <tr>
                  <th scope="col">Username</th>
                  <th scope="col">Role</th>
                  <th scope="col">Created</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((u) => (
                  <tr key={u.id}>
                    <th scope="row">{u.username}</th>
                    <td>{u.is_admin ? "administrator" : "user"}</td>
                    <td>
                      <Ago at={u.created_at} />
                    </td>
                    <td>
                      <div class="row-actions">
                        {u.is_admin ? (
                          <ConfirmButton
                            label={`Remove administrator ${u.username}`}
                            question={`${u.username} will no longer administer this appliance.`}
                            confirmLabel="Remove administrator"
                            onConfirm={() => setAdmin(u, false)}
                            danger
                          />
                        ) : (
                          <ConfirmButton
                            label={`Make ${u.username} administrator`}
                            question={`${u.username} will be able to manage every user, organization and builder of this appliance.`}
                            confirmLabel="Make administrator"
                            onConfirm={() => setAdmin(u, true)}
                          />
                        )}
                        <ConfirmButton
                          label={`Reset token of ${u.username}`}
                          question={`Every token ${u.username} has is revoked and a new one is shown once. Their web sessions stay.`}
                          confirmLabel="Reset token"
                          onConfirm={() => reset(u)}
                          danger
                        />
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
    </AdminFrame>
  );
}
