/**
 * @module web/pages/device/approve
 * `/device`: a person approves (or denies) a CLI's device login. Signed out, the UI's sign-in
 * comes first. The code is typed by the person, never taken from the link: a link that fills it
 * in is what a phishing attempt relies on (main.tsx drops ?code and #code before anything
 * renders). Before deciding, the page shows where the request came from — address, user agent,
 * when — and, last and marked unverified, the name the client gave itself.
 */
import { useState } from "preact/hooks";
import type { DeviceRequestView } from "../../../../src/auth/models.ts";
import { api, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues, useAction } from "../../components/forms.tsx";
import { useSession } from "../../session.tsx";

export function DeviceApproval() {
  const session = useSession();
  const [request, setRequest] = useState<DeviceRequestView | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);
  const lookup = useAction(async (code: string) => {
    setRequest(null);
    setOutcome(null);
    setRequest(await api.get<DeviceRequestView>(`/api/v1/auth/device/${seg(code.trim())}`));
  });
  const decide = useAction(async (decision: "approve" | "deny") => {
    if (!request) return;
    await api.post(`/api/v1/auth/device/${decision}`, { user_code: request.user_code });
    setRequest(null);
    setOutcome(
      decision === "approve" ? "Approved. You can return to your terminal." : "Denied. The CLI will not be logged in.",
    );
  });
  return (
    <section class="narrow" aria-labelledby="device-title">
      <h1 id="device-title">Approve a CLI login</h1>
      <p>
        Someone ran <code>slipway login</code> or <code>depot login</code> and was shown a code. Type the code{" "}
        <strong>your own terminal</strong> shows. If you did not just start a login yourself, someone may be trying to
        get access in your name: do not approve.
      </p>
      <p class="hint">Signed in as {session.me.username}.</p>
      <form
        aria-label="Look up a login code"
        class="inline-form"
        onSubmit={(ev) => void lookup.run(formValues(ev).code ?? "")}
      >
        <Field
          label="Code"
          name="code"
          required
          autoComplete="off"
          placeholder="BCDF-GHJK"
          hint="The depot CLI shows it at the end of the link it printed, after #."
        />
        <button type="submit" disabled={lookup.busy}>
          Look up
        </button>
      </form>
      {lookup.error && (
        <p class="form-error" role="alert">
          Cannot find that code: {lookup.error.message}
        </p>
      )}
      {request && (
        <section aria-labelledby="request-title" class="device-request">
          <h2 id="request-title">
            Login request <span data-testid="req-code">{request.user_code}</span>
          </h2>
          <dl>
            <dt>From address</dt>
            <dd data-testid="req-ip">{request.ip ?? "unknown"}</dd>
            <dt>User agent</dt>
            <dd data-testid="req-agent">{request.user_agent ?? "unknown"}</dd>
            <dt>Requested</dt>
            <dd data-testid="req-at">
              <Ago at={request.created_at} /> ({new Date(request.created_at).toLocaleString()})
            </dd>
            <dt>Token lifetime</dt>
            <dd data-testid="req-days">{request.token_lifetime_days} days</dd>
            <dt>The client's own name for itself (not verified)</dt>
            <dd data-testid="req-client">{request.client_name ?? "(none)"}</dd>
          </dl>
          <p>
            Approving gives that client a token that acts as you, with all your rights, for{" "}
            {request.token_lifetime_days} days (revoke it any time from your account's tokens).
          </p>
          <FormError error={decide.error} />
          <div class="actions">
            <button type="button" class="primary" disabled={decide.busy} onClick={() => void decide.run("approve")}>
              Approve
            </button>
            <button type="button" class="danger" disabled={decide.busy} onClick={() => void decide.run("deny")}>
              Deny
            </button>
          </div>
        </section>
      )}
      {outcome && (
        <p role="status" data-testid="outcome">
          {outcome}
        </p>
      )}
    </section>
  );
}
