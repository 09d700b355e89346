/**
 * @module web/pages/login
 * Sign in with a password: the API sets the session cookie (HttpOnly, never seen by script).
 * Shown at whatever address a signed-out visitor opened; afterwards that page renders.
 */
import { useLocation } from "preact-iso";
import { api } from "../api.ts";
import { Field, FormError, formValues, useAction } from "../components/forms.tsx";

export function Login(props: { onSignedIn: () => Promise<void> }) {
  const { path, query, route } = useLocation();
  const signIn = useAction(async (username: string, password: string) => {
    await api.post("/api/v1/auth/login", { username, password });
    await props.onSignedIn();
    if (path === "/login") {
      const next = query.next ?? "/";
      route(next.startsWith("/") && !next.startsWith("//") ? next : "/", true);
    }
  });
  return (
    <main id="content" class="narrow">
      <h1>Sign in to Slipway</h1>
      <form
        aria-label="Sign in"
        onSubmit={(ev) => {
          const v = formValues(ev);
          void signIn.run(v.username ?? "", v.password ?? "");
        }}
      >
        <Field label="Username" name="username" autoComplete="username" required autoFocus />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required />
        <FormError error={signIn.error} />
        <button type="submit" class="primary" disabled={signIn.busy}>
          Sign in
        </button>
      </form>
      <p class="hint">
        First time on this appliance? The administrator sets the first password with the one-time token in the data
        directory (<code>initial-admin-token</code>), as the README's "First login" shows.
      </p>
    </main>
  );
}
