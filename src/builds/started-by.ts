/**
 * @module builds/started-by
 * Who started a build, in words a person reads: a username, a token's name, or "CI: <provider>
 * <repository>" for a CI job (from its OIDC issuer and subject). The builds table keeps the actor
 * label (user:…, token:…, oidc:…); the owning services give the names.
 */

export type StarterKind = "user" | "token" | "ci" | "appliance";
export interface Starter {
  kind: StarterKind;
  name: string;
}

/** What the builds need from the users' and tokens' owners: names of many, in one query each. */
export interface StarterNames {
  usernamesOf(ids: readonly string[]): Map<string, string>;
  namesOf(ids: readonly string[]): Map<string, { kind: string; name: string }>;
}

const PROVIDERS: [RegExp, string][] = [
  [/(^|\.)githubusercontent\.com$|(^|\.)github\.com$|github/, "GitHub Actions"],
  [/gitlab/, "GitLab CI"],
  [/circleci/, "CircleCI"],
  [/buildkite/, "Buildkite"],
];

/** "CI: GitHub Actions acme/app" from an OIDC issuer and subject (unknown CIs by their issuer's host). */
export function ciName(issuer: string, subject: string): string {
  let host = issuer;
  try {
    host = new URL(issuer).host;
  } catch {}
  const provider = PROVIDERS.find(([re]) => re.test(host))?.[1] ?? host;
  // Each CI puts the repository in its subject its own way.
  const repository =
    /^repo:([^:]+)/.exec(subject)?.[1] ?? // GitHub: repo:OWNER/NAME:ref:…
    /^project_path:([^:]+)/.exec(subject)?.[1] ?? // GitLab: project_path:GROUP/PROJECT:ref_type:…
    (/^organization:([^:]+):pipeline:([^:]+)/.exec(subject)?.slice(1, 3).join("/") || undefined) ?? // Buildkite
    /^org\/[^/]+\/project\/([^/]+)/.exec(subject)?.[1] ?? // CircleCI: org/ID/project/ID/…
    subject;
  return `CI: ${provider} ${repository}`;
}

/** An `oidc:ISSUER#SUBJECT` label (as auth/actor's oidcLabel makes it) in words. */
function oidcName(label: string): string {
  const rest = label.slice("oidc:".length);
  const hash = rest.indexOf("#");
  return hash < 0 ? `CI: ${rest}` : ciName(rest.slice(0, hash), rest.slice(hash + 1));
}

/** Resolves every label of a page of builds with one query per owner. */
export function describeStarters(labels: readonly string[], names: StarterNames): Map<string, Starter> {
  const idsOf = (prefix: string) => [
    ...new Set(labels.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length))),
  ];
  const users = names.usernamesOf(idsOf("user:"));
  const tokens = names.namesOf(idsOf("token:"));
  const out = new Map<string, Starter>();
  for (const label of labels) {
    if (out.has(label)) continue;
    if (label.startsWith("user:")) {
      const id = label.slice(5);
      out.set(label, { kind: "user", name: users.get(id) ?? "a deleted user" });
    } else if (label.startsWith("token:")) {
      const t = tokens.get(label.slice(6));
      if (!t) out.set(label, { kind: "token", name: "a deleted token" });
      // A CI job's exchanged token is named by the job's label.
      else if (t.kind === "oidc") out.set(label, { kind: "ci", name: oidcName(t.name) });
      else out.set(label, { kind: "token", name: t.name });
    } else if (label.startsWith("oidc:")) out.set(label, { kind: "ci", name: oidcName(label) });
    else out.set(label, { kind: "appliance", name: label });
  }
  return out;
}
