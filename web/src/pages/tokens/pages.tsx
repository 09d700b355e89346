/**
 * @module web/pages/tokens/pages
 * The three token pages: a person's own user tokens, an organization's tokens (in its frame),
 * a project's tokens (in its frame). Members who are not owners see why there is nothing to
 * manage instead of a list the API would refuse them.
 */
import { seg } from "../../api.ts";
import { OrgFrame } from "../../frames/org.tsx";
import { ProjectFrame } from "../../frames/project.tsx";
import { canOwn, findOrg, useSession } from "../../session.tsx";
import { TokenManager } from "./token-manager.tsx";

export function AccountTokens() {
  return (
    <>
      <p class="breadcrumb">
        <a href="/account">Account</a> / tokens
      </p>
      <h1>Your tokens</h1>
      <p class="hint">
        A user token acts as you, with your role in every organization: for the CLI and your own scripts. CI should use
        a project token or a trust relationship instead.
      </p>
      <TokenManager listPath="/api/v1/tokens" scope={{ kind: "user" }} canManage noun="User tokens" />
    </>
  );
}

export function OrgTokens(props: { org: string }) {
  return (
    <OrgFrame org={props.org} title="Tokens">
      {(org, owner) =>
        owner ? (
          <>
            <p class="hint">
              An organization token automates this organization's projects, their tokens and trust — not its members.
              Project tokens are on each project's Tokens tab.
            </p>
            <TokenManager
              key={org.id}
              listPath={`/api/v1/orgs/${seg(org.id)}/tokens`}
              scope={{ kind: "org", org: org.id }}
              orgId={org.id}
              canManage
              noun="Organization tokens"
              kinds={["org"]}
            />
          </>
        ) : (
          <p>Only owners of {org.name} see and manage its tokens.</p>
        )
      }
    </OrgFrame>
  );
}

export function ProjectTokens(props: { id: string }) {
  const session = useSession();
  return (
    <ProjectFrame id={props.id} title="Tokens">
      {(p) => {
        const org = findOrg(session, p.org_id);
        return canOwn(session, { id: p.org_id }) ? (
          <>
            <p class="hint">A project token reads this project and builds on it, nothing else: for CI without OIDC.</p>
            <TokenManager
              key={p.id}
              listPath={`/api/v1/projects/${seg(p.id)}/tokens`}
              scope={{ kind: "project", project: p.id }}
              orgId={p.org_id}
              canManage
              noun="Project tokens"
            />
          </>
        ) : (
          <p>Only owners of {org?.name ?? "the organization"} see and manage this project's tokens.</p>
        );
      }}
    </ProjectFrame>
  );
}
