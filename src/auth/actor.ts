/**
 * @module auth/actor
 * Who is making a request, as the policy sees it. Every credential kind becomes one of these.
 */

export type Role = "owner" | "user";

export type Actor =
  | { kind: "anonymous" }
  /** A person, by user token (tokenId set) or, later, a UI session (tokenId null). */
  | {
      kind: "user";
      userId: string;
      username: string;
      isAdmin: boolean;
      tokenId: string | null;
      memberships: Record<string, Role>;
    }
  /** Automation for one organization (created by its owners). */
  | { kind: "org-token"; tokenId: string; orgId: string }
  /** Enough to run builds on one project (CI without OIDC). */
  | { kind: "project-token"; tokenId: string; orgId: string; projectId: string }
  /** A CI job: a raw OIDC JWT (tokenId null; issuer and subject from the token) or a token
   * exchanged for one (tokenId set; issuer null). */
  | {
      kind: "oidc";
      tokenId: string | null;
      issuer: string | null;
      subject: string;
      projects: { projectId: string; orgId: string }[];
    }
  /** Handed out by CreateBuild: drives that one build and nothing else. */
  | { kind: "build-token"; tokenId: string; orgId: string; projectId: string; buildId: string }
  /** A read-only registry credential for one project (depot pull-token, GetPullInfo); valid 1 h.
   * Not stored: a JWT the registry's token service signed (tokenId is its jti). */
  | { kind: "pull-token"; tokenId: string; orgId: string; projectId: string }
  /** The egress agent of one runner host (tokenId is the runner host's id). */
  | { kind: "agent"; tokenId: string; orgId: string; hostId: string };

/** How the audit log names an actor. */
export function actorLabel(a: Actor): string {
  switch (a.kind) {
    case "anonymous":
      return "anonymous";
    case "user":
      return `user:${a.userId}`;
    case "oidc":
      return a.tokenId ? `token:${a.tokenId}` : oidcLabel(a.issuer ?? "", a.subject);
    default:
      return `token:${a.tokenId}`;
  }
}

/** A CI job by issuer and subject: two issuers may use the same subject ("repo:acme/app:…" on
 * github.com and on an Enterprise Server), and must not pass for each other (a build's starter
 * drives it). An issuer never holds `#` (it has no fragment), so the first one splits the two. */
export function oidcLabel(issuer: string, subject: string): string {
  return `oidc:${issuer}#${subject}`;
}
