/**
 * @module web/pages/account/account
 * `/account`: the signed-in person's own page: their password, their web sessions (where from,
 * when, which one is this browser) with a way to end each, and a link to their tokens.
 */
import type { SessionView } from "../../../../src/auth/models.ts";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { ConfirmButton, Field, FormError, formValues, useAction } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { useSession } from "../../session.tsx";
import { useState } from "preact/hooks";

export function AccountPage() {
  const session = useSession();
  return (
    <>
      <h1>Your account</h1>
      <p>
        Signed in as <strong>{session.me.username}</strong>
        {session.me.is_admin ? " (administrator)" : ""}.
      </p>
      <PasswordForm />
      <Sessions />
      <section aria-labelledby="tokens-title">
        <h2 id="tokens-title">Tokens</h2>
        <p>
          Tokens let the <code>depot</code> CLI and scripts act as you. <a href="/account/tokens">Your tokens</a>
        </p>
      </section>
    </>
  );
}

function PasswordForm() {
  const [done, setDone] = useState(false);
  const change = useAction(async (form: HTMLFormElement, current: string, next: string, again: string) => {
    setDone(false);
    if (next !== again) throw new Error("the new password and its repetition differ");
    await api.put("/api/v1/me/password", { current_password: current, new_password: next });
    form.reset();
    setDone(true);
  });
  return (
    <section aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <form
        aria-labelledby="password-title"
        onSubmit={(ev) => {
          const v = formValues(ev);
          void change.run(
            ev.currentTarget as HTMLFormElement,
            v.current_password ?? "",
            v.new_password ?? "",
            v.new_password_again ?? "",
          );
        }}
      >
        <Field
          label="Current password"
          name="current_password"
          type="password"
          autoComplete="current-password"
          error={change.error}
        />
        <Field
          label="New password"
          name="new_password"
          type="password"
          autoComplete="new-password"
          required
          error={change.error}
        />
        <Field
          label="New password again"
          name="new_password_again"
          type="password"
          autoComplete="new-password"
          required
        />
        <FormError error={change.error} />
        {done && <p role="status">Password changed. Use it the next time you sign in.</p>}
        <button type="submit" class="primary" disabled={change.busy}>
          Change password
        </button>
      </form>
    </section>
  );
}

/** "Firefox on Linux" from a user agent, falling back to the raw string (shortened). */
export function browserName(ua: string | null): string {
  if (!ua) return "unknown browser";
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chrom(e|ium)\//.test(ua)
        ? "Chromium/Chrome"
        : /Safari\//.test(ua)
          ? "Safari"
          : null;
  const os = /Android/.test(ua)
    ? "Android"
    : /iPhone|iPad/.test(ua)
      ? "iOS"
      : /Windows/.test(ua)
        ? "Windows"
        : /Mac OS X/.test(ua)
          ? "macOS"
          : /Linux/.test(ua)
            ? "Linux"
            : null;
  if (!browser) return ua.length > 60 ? `${ua.slice(0, 57)}…` : ua;
  return os ? `${browser} on ${os}` : browser;
}

function Sessions() {
  const session = useSession();
  const list = useApi<SessionView[]>("/api/v1/auth/sessions");
  const revoke = async (s: SessionView) => {
    await api.delete(`/api/v1/auth/sessions/${seg(s.id)}`);
    // Ending this browser's own session is signing out.
    if (s.current) await session.signOut();
    else await list.reload();
  };
  return (
    <section aria-labelledby="sessions-title">
      <h2 id="sessions-title">Web sessions</h2>
      <p class="hint">Every browser signed in as you. Revoke one you do not recognise; then change your password.</p>
      <Loaded from={list}>
        {(sessions) =>
          sessions.length === 0 ? (
            <p class="empty">No web sessions (you are using a token).</p>
          ) : (
            <div class="table-wrap">
              <table>
                <caption class="visually-hidden">Your web sessions</caption>
                <thead>
                  <tr>
                    <th scope="col">Browser</th>
                    <th scope="col">Address</th>
                    <th scope="col">Signed in</th>
                    <th scope="col">Last used</th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {sessions.map((s) => (
                    <tr key={s.id} data-session={s.id}>
                      <td>
                        <span title={s.user_agent ?? undefined}>{browserName(s.user_agent)}</span>
                        {s.current && <strong class="this-session"> (this browser)</strong>}
                      </td>
                      <td>{s.ip ?? "—"}</td>
                      <td>
                        <Ago at={s.created_at} />
                      </td>
                      <td>
                        <Ago at={s.last_seen_at} />
                      </td>
                      <td>
                        <ConfirmButton
                          label="Revoke"
                          danger
                          question={
                            s.current
                              ? "Revoke this browser's session? You will be signed out here."
                              : `Revoke the session of ${browserName(s.user_agent)} from ${s.ip ?? "an unknown address"}? It is signed out at once.`
                          }
                          confirmLabel="Revoke session"
                          onConfirm={() => revoke(s)}
                        />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </section>
  );
}
