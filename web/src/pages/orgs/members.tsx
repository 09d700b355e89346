/**
 * @module web/pages/orgs/members
 * `/orgs/:org/members`: who is in the organization and with which role. Owners add existing
 * users, change roles and remove members; the last owner is neither demoted nor removed (the UI
 * does not offer it, and the API refuses it with a message the page shows).
 */
import type { MemberView } from "../../../../src/orgs/models.ts";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues, useAction, RemoveButton } from "../../components/forms.tsx";
import { Loaded, type Loadable, useApi } from "../../data.tsx";
import { OrgFrame } from "../../frames/org.tsx";
import { useSession } from "../../session.tsx";
import type { OrgView } from "../../../../src/orgs/models.ts";

type Role = MemberView["role"];

export function MembersPage(props: { org: string }) {
  return (
    <OrgFrame org={props.org} title="Members">
      {(org, owner) => <Members key={org.id} org={org} owner={owner} />}
    </OrgFrame>
  );
}

function Members(props: { org: OrgView; owner: boolean }) {
  const members = useApi<MemberView[]>(`/api/v1/orgs/${seg(props.org.id)}/members`);
  return (
    <Loaded from={members}>
      {(list) => (
        <>
          <MemberTable org={props.org} owner={props.owner} list={list} members={members} />
          {props.owner && <AddMember org={props.org} members={members} />}
        </>
      )}
    </Loaded>
  );
}

function MemberTable(props: { org: OrgView; owner: boolean; list: MemberView[]; members: Loadable<MemberView[]> }) {
  const session = useSession();
  const owners = props.list.filter((m) => m.role === "owner").length;
  const base = `/api/v1/orgs/${seg(props.org.id)}/members`;
  // A change to one's own membership changes what the session may do: reload it too.
  const after = async (m: MemberView) => {
    await props.members.reload();
    if (m.user_id === session.me.id) await session.refresh();
  };
  const change = useAction(async (m: MemberView, role: Role) => {
    try {
      await api.patch(`${base}/${seg(m.user_id)}`, { role });
    } finally {
      await after(m); // refused or not, the table shows the role the API has
    }
  });
  return (
    <section aria-labelledby="members-title">
      <h2 id="members-title">
        {props.list.length} {props.list.length === 1 ? "member" : "members"}
      </h2>
      {!props.owner && <p class="hint">Only owners change who is in the organization.</p>}
      <FormError error={change.error} />
      <div class="table-wrap">
        <table class="members">
          <caption class="visually-hidden">Members of {props.org.name}</caption>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col">Member since</th>
              {props.owner && (
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {props.list.map((m) => {
              const lastOwner = m.role === "owner" && owners <= 1;
              return (
                <tr key={m.user_id} data-member={m.username}>
                  <th scope="row">
                    {m.username}
                    {m.user_id === session.me.id && " (you)"}
                  </th>
                  <td>
                    {props.owner && !lastOwner ? (
                      <select
                        aria-label={`Role of ${m.username}`}
                        value={m.role}
                        disabled={change.busy}
                        onChange={(e) => void change.run(m, (e.target as HTMLSelectElement).value as Role)}
                      >
                        <option value="owner">owner</option>
                        <option value="user">user</option>
                      </select>
                    ) : (
                      <span data-role={m.role}>{m.role}</span>
                    )}
                    {props.owner && lastOwner && <small class="hint"> (the last owner)</small>}
                  </td>
                  <td>
                    <Ago at={m.created_at} />
                  </td>
                  {props.owner && (
                    <td>
                      {!lastOwner && (
                        <RemoveButton
                          label={`Remove ${m.username}`}
                          question={
                            m.user_id === session.me.id
                              ? `Remove yourself from ${props.org.name}? You lose access to its projects.`
                              : `Remove ${m.username} from ${props.org.name}? They lose access to its projects; their own tokens stop working here.`
                          }
                          confirmLabel="Remove member"
                          path={`${base}/${seg(m.user_id)}`}
                          onRemoved={() => after(m)}
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
    </section>
  );
}

function AddMember(props: { org: OrgView; members: Loadable<MemberView[]> }) {
  const add = useAction(async (form: HTMLFormElement, user: string, role: string) => {
    await api.post(`/api/v1/orgs/${seg(props.org.id)}/members`, { user, role });
    form.reset();
    await props.members.reload();
  });
  return (
    <section aria-labelledby="add-member-title">
      <h2 id="add-member-title">Add a member</h2>
      <form
        class="inline-form"
        aria-labelledby="add-member-title"
        onSubmit={(ev) => {
          const v = formValues(ev);
          void add.run(ev.currentTarget as HTMLFormElement, (v.user ?? "").trim(), v.role ?? "user");
        }}
      >
        <Field label="Username" name="user" required autoComplete="off" error={add.error} />
        <div class="field">
          <label for="f-role">Role</label>
          <select id="f-role" name="role">
            <option value="user">user</option>
            <option value="owner">owner</option>
          </select>
        </div>
        <button type="submit" class="primary" disabled={add.busy}>
          Add member
        </button>
      </form>
      <FormError error={add.error} />
      <p class="hint">The user must exist on this appliance already (an administrator creates users).</p>
    </section>
  );
}
