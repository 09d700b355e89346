/**
 * @module web/pages/tokens/trust
 * A project's CI trust relationships: the list (provider, issuer, the claims a token must carry),
 * removing one with confirmation, and an add form per provider with exactly the fields the API
 * accepts (TrustCreate). Every message the API gives about a field is shown at that field.
 */
import type { TrustCreateBody, TrustView } from "../../../../src/auth/models.ts";
import { useState } from "preact/hooks";
import { api, ApiError, seg } from "../../api.ts";
import { Ago } from "../../components/format.tsx";
import { Field, FormError, formValues, useAction, RemoveButton } from "../../components/forms.tsx";
import { Loaded, useApi } from "../../data.tsx";
import { ProjectFrame } from "../../frames/project.tsx";
import { canOwn, useSession } from "../../session.tsx";

type Provider = "github" | "github-enterprise" | "circleci" | "buildkite" | "generic";
const PROVIDERS: [Provider, string][] = [
  ["github", "GitHub Actions"],
  ["github-enterprise", "GitHub Enterprise Server"],
  ["circleci", "CircleCI"],
  ["buildkite", "Buildkite"],
  ["generic", "GitLab / generic OIDC"],
];
const PROVIDER_NAMES: Record<string, string> = {
  github: "GitHub Actions",
  circleci: "CircleCI",
  buildkite: "Buildkite",
  generic: "Generic OIDC",
};

/** The provider as the add form names it: a GitHub trust with its own issuer is Enterprise Server. */
function providerName(t: TrustView): string {
  if (t.provider === "github" && t.issuer !== "https://token.actions.githubusercontent.com")
    return "GitHub Enterprise Server";
  return PROVIDER_NAMES[t.provider] ?? t.provider;
}

/** What a trust requires of a token, as "claim = value" lines for the list. */
function requirements(t: TrustView): [string, string][] {
  const c = t.config;
  const out: [string, string][] = [];
  const add = (label: string, v: unknown) => {
    if (typeof v === "string" && v !== "") out.push([label, v]);
  };
  if (t.provider === "github") {
    add("repository", c.repository);
    add("repository_id", c.repositoryId);
    add("repository_owner_id", c.repositoryOwnerId);
    add("ref", c.ref);
    add("environment", c.environment);
  } else if (t.provider === "circleci") {
    add("organization id", c.organizationId);
    add("oidc.circleci.com/project-id", c.projectUuid);
  } else if (t.provider === "buildkite") {
    add("organization_slug", c.organizationSlug);
    add("pipeline_slug", c.pipelineSlug);
  } else if (c.claims && typeof c.claims === "object") {
    for (const [k, v] of Object.entries(c.claims as Record<string, unknown>)) add(k, v);
  }
  return out;
}

/** Every message the API gave under `/name` (and its members, e.g. /claims/sub), for a text area. */
function messagesFor(error: Error | undefined, name: string): string[] {
  if (!(error instanceof ApiError)) return [];
  return (error.problem.errors ?? [])
    .filter((e) => e.pointer === `/${name}` || e.pointer.startsWith(`/${name}/`))
    .map((e) => {
      const rest = e.pointer
        .slice(name.length + 2)
        .replace(/~1/g, "/")
        .replace(/~0/g, "~");
      return rest ? `${rest}: ${e.detail}` : e.detail;
    });
}

/** A labelled multi-line field with the API's messages for it (Field is one line). */
function TextArea(props: { label: string; name: string; error: Error | undefined; hint: string; rows?: number }) {
  const id = `f-${props.name}`;
  const messages = messagesFor(props.error, props.name);
  return (
    <div class="field wide-field">
      <label for={id}>{props.label}</label>
      <textarea
        id={id}
        name={props.name}
        rows={props.rows ?? 3}
        spellcheck={false}
        aria-invalid={messages.length > 0 ? true : undefined}
        aria-describedby={`${id}-note`}
      />
      <small id={`${id}-note`} class={messages.length > 0 ? "field-error" : "hint"}>
        {messages.length > 0 ? messages.join("; ") : props.hint}
      </small>
    </div>
  );
}

const lines = (s: string | undefined) =>
  (s ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");

/** The form's values as the API's body: empty optional fields left out, nothing else changed. */
function trustBody(provider: Provider, v: Record<string, string>): TrustCreateBody {
  const opt = (name: string) => (v[name]?.trim() ? { [name]: v[name].trim() } : {});
  const audiences = lines(v.audiences);
  const common = audiences.length > 0 ? { audiences } : {};
  switch (provider) {
    case "github":
    case "github-enterprise": {
      const repository = v.repository?.trim() ?? "";
      return {
        provider: "github",
        // The owner is the repository's first part: one field, so a person cannot make them differ.
        owner: repository.split("/")[0] ?? "",
        repository,
        ...(provider === "github-enterprise" ? { issuer: v.issuer?.trim() ?? "" } : {}),
        ...opt("ref"),
        ...opt("environment"),
        ...opt("repositoryId"),
        ...opt("repositoryOwnerId"),
        ...common,
      };
    }
    case "circleci":
      return {
        provider: "circleci",
        organizationId: v.organizationId?.trim() ?? "",
        projectUuid: v.projectUuid?.trim() ?? "",
        ...common,
      };
    case "buildkite":
      return {
        provider: "buildkite",
        organizationSlug: v.organizationSlug?.trim() ?? "",
        pipelineSlug: v.pipelineSlug?.trim() ?? "",
        ...common,
      };
    case "generic": {
      const claims: Record<string, string> = {};
      for (const l of lines(v.claims)) {
        const at = l.indexOf("=");
        // A line without "=" is a claim with no value: the API says what is missing.
        if (at < 0) claims[l] = "";
        else claims[l.slice(0, at).trim()] = l.slice(at + 1).trim();
      }
      let staticJwks: unknown;
      const pasted = v.static_jwks?.trim();
      if (pasted) {
        try {
          staticJwks = JSON.parse(pasted);
        } catch {
          staticJwks = pasted; // not JSON: sent as typed, and the API's message names the field
        }
      }
      return {
        provider: "generic",
        issuer: v.issuer?.trim() ?? "",
        claims,
        ...(staticJwks !== undefined ? { static_jwks: staticJwks as TrustCreateBody["static_jwks"] } : {}),
        ...common,
      };
    }
  }
}

function AddTrust(props: { projectId: string; onAdded: () => Promise<void> }) {
  const [provider, setProvider] = useState<Provider>("github");
  const [formKey, setFormKey] = useState(0);
  const add = useAction(async (ev: Event) => {
    const v = formValues(ev);
    await api.post<TrustView>(`/api/v1/projects/${seg(props.projectId)}/trust`, trustBody(provider, v));
    setFormKey((k) => k + 1);
    await props.onAdded();
  });
  const e = add.error;
  return (
    <section aria-labelledby="add-trust">
      <h2 id="add-trust">Add a trust relationship</h2>
      <fieldset class="providers">
        <legend>CI provider</legend>
        {PROVIDERS.map(([value, label]) => (
          <label key={value} class="choice">
            <input
              type="radio"
              name="provider"
              value={value}
              checked={provider === value}
              onChange={() => {
                setProvider(value);
                add.clear();
              }}
            />{" "}
            {label}
          </label>
        ))}
      </fieldset>
      <form key={`${provider}-${formKey}`} onSubmit={(ev) => void add.run(ev)}>
        {(provider === "github" || provider === "github-enterprise") && (
          <>
            {provider === "github-enterprise" && (
              <Field
                label="Issuer URL"
                name="issuer"
                type="url"
                error={e}
                required
                placeholder="https://github.example.com/_services/token"
                hint="Your server's Actions issuer: https://HOST/_services/token"
              />
            )}
            <Field
              label="Repository (owner/name)"
              name="repository"
              error={e}
              required
              placeholder="acme/app"
              hint="repository_owner and repository must match (case ignored)"
            />
            <Field
              label="Ref (optional)"
              name="ref"
              error={e}
              placeholder="refs/heads/main"
              hint="Exact, or a glob with *: refs/tags/v*"
            />
            <Field
              label="Environment (optional)"
              name="environment"
              error={e}
              hint="A deployment environment, exactly"
            />
            <Field
              label="Repository id (optional)"
              name="repositoryId"
              error={e}
              hint="GitHub's repository_id: a re-created repository of the same name does not match"
            />
            <Field label="Owner id (optional)" name="repositoryOwnerId" error={e} hint="GitHub's repository_owner_id" />
          </>
        )}
        {provider === "circleci" && (
          <>
            <Field label="Organization id" name="organizationId" error={e} required hint="A UUID" />
            <Field
              label="Project id"
              name="projectUuid"
              error={e}
              required
              hint="oidc.circleci.com/project-id, a UUID"
            />
          </>
        )}
        {provider === "buildkite" && (
          <>
            <Field label="Organization slug" name="organizationSlug" error={e} required />
            <Field label="Pipeline slug" name="pipelineSlug" error={e} required />
          </>
        )}
        {provider === "generic" && (
          <>
            <Field
              label="Issuer URL"
              name="issuer"
              type="url"
              error={e}
              required
              placeholder="https://gitlab.example.com"
              hint="Must equal the token's iss exactly"
            />
            <TextArea
              label="Claims to require"
              name="claims"
              error={e}
              hint="One claim=value per line; * matches any run of characters, e.g. project_path=acme/*"
            />
            <TextArea
              label="JWKS (optional)"
              name="static_jwks"
              error={e}
              rows={5}
              hint={`Paste the issuer's public keys ({"keys": [ … ]}) when this appliance cannot reach it; they are then the only keys accepted`}
            />
          </>
        )}
        <TextArea
          label="Audiences (optional)"
          name="audiences"
          error={e}
          rows={2}
          hint="One per line. Empty: this appliance's URL. Add https://depot.dev only for the depot CLI's OIDC flow."
        />
        <FormError error={e} />
        <button type="submit" class="primary" disabled={add.busy}>
          Add trust relationship
        </button>
      </form>
    </section>
  );
}

export function ProjectTrust(props: { id: string }) {
  const session = useSession();
  return (
    <ProjectFrame id={props.id} title="Trust">
      {(p) => <TrustList projectId={p.id} owner={canOwn(session, { id: p.org_id })} />}
    </ProjectFrame>
  );
}

function TrustList(props: { projectId: string; owner: boolean }) {
  const trusts = useApi<TrustView[]>(`/api/v1/projects/${seg(props.projectId)}/trust`);
  return (
    <>
      <p class="hint">
        CI jobs whose OIDC token matches a trust relationship act for this project without a stored secret.
      </p>
      <section aria-labelledby="trust-list">
        <h2 id="trust-list">Trust relationships</h2>
        <Loaded from={trusts}>
          {(list) =>
            list.length === 0 ? (
              <p class="empty">No trust relationships.</p>
            ) : (
              <div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Provider</th>
                      <th scope="col">Issuer</th>
                      <th scope="col">Requires</th>
                      <th scope="col">Audiences</th>
                      <th scope="col">Created</th>
                      {props.owner && <th scope="col">Actions</th>}
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((t) => (
                      <tr key={t.id}>
                        <td>
                          {providerName(t)}
                          {t.static_jwks && <div class="hint">pasted keys</div>}
                        </td>
                        <td class="break">
                          <code>{t.issuer}</code>
                        </td>
                        <td class="break">
                          <ul class="claims">
                            {requirements(t).map(([k, v]) => (
                              <li key={k}>
                                <code>
                                  {k} = {v}
                                </code>
                              </li>
                            ))}
                          </ul>
                        </td>
                        <td class="break">{t.audiences.join(", ")}</td>
                        <td>
                          <Ago at={t.created_at} />
                        </td>
                        {props.owner && (
                          <td>
                            <RemoveButton
                              label={`Remove trust ${providerName(t)} ${requirements(t)[0]?.[1] ?? t.issuer}`}
                              question="Remove this trust relationship? CI jobs relying on it are refused from now on."
                              confirmLabel="Remove trust relationship"
                              path={`/api/v1/trust/${seg(t.id)}`}
                              onRemoved={trusts.reload}
                            />
                          </td>
                        )}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Loaded>
      </section>
      {props.owner ? (
        <AddTrust projectId={props.projectId} onAdded={trusts.reload} />
      ) : (
        <p>Only the organization's owners add and remove trust relationships.</p>
      )}
    </>
  );
}
