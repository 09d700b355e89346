/**
 * @module auth/oidc/trust-rules
 * Trust relationships — "a CI job whose token says X may act on project P" — their validation,
 * default issuers, and the claim matching that decides whether a verified token fits one.
 * Matching is always exact or an explicitly anchored glob, never a prefix or substring: a trust
 * for `acme/app` must not admit `acme/app-fork`, and one for `acme` must not admit `acme-evil`.
 */
import { InvalidInputError } from "../../errors.ts";
import type { JsonWebKeySet, Jwk } from "./jwt.ts";
import type { InternalAllowance } from "./address.ts";
import { urlProblem } from "./url.ts";

interface TrustBase {
  id: string;
  projectId: string;
  /** Must equal the token's `iss` exactly. */
  issuer: string;
  /** The token's `aud` (string or array) must contain at least one of these. */
  audiences: string[];
  /** The issuer's JWKS pasted by an air-gapped site: keys come only from here, never fetched. */
  staticJwks?: JsonWebKeySet;
}

export type TrustRelationship =
  | (TrustBase & {
      provider: "github";
      owner: string;
      /** "owner/name" */
      repository: string;
      /** Pins by GitHub's immutable ids (`repository_id`, `repository_owner_id`): a repository
       * deleted and re-created under the same name, or a renamed owner's name taken over, does not match. */
      repositoryId?: string;
      repositoryOwnerId?: string;
      /** `ref` (e.g. refs/heads/main), exact or a glob with `*`. */
      ref?: string;
      /** `environment` (a GitHub deployment environment), exactly. */
      environment?: string;
    })
  | (TrustBase & { provider: "circleci"; organizationId: string; projectUuid: string })
  | (TrustBase & { provider: "buildkite"; organizationSlug: string; pipelineSlug: string })
  | (TrustBase & {
      provider: "generic";
      /** claim name → exact string, or a glob where `*` matches any run of characters (see globMatch). */
      claims: Record<string, string>;
    });

export type TrustProvider = TrustRelationship["provider"];

export const GITHUB_ISSUER = "https://token.actions.githubusercontent.com";
export const BUILDKITE_ISSUER = "https://agent.buildkite.com";

/** CircleCI issues per organization: the issuer itself pins the org. */
export function circleciIssuer(organizationId: string): string {
  return `https://oidc.circleci.com/org/${organizationId.toLowerCase()}`;
}

/** GitHub Enterprise Server's Actions issuer for a host such as "github.example.com". */
export function githubEnterpriseIssuer(host: string): string {
  return `https://${host}/_services/token`;
}

export function defaultIssuer(
  input:
    | { provider: "github"; enterpriseHost?: string }
    | { provider: "circleci"; organizationId: string }
    | { provider: "buildkite" },
): string {
  switch (input.provider) {
    case "github":
      return input.enterpriseHost ? githubEnterpriseIssuer(input.enterpriseHost) : GITHUB_ISSUER;
    case "circleci":
      return circleciIssuer(input.organizationId);
    case "buildkite":
      return BUILDKITE_ISSUER;
  }
}

/**
 * Whether `value` matches `pattern`. `*` matches any run of characters, including none and
 * including separators such as `:` and `/`; every other character matches only itself (there is
 * no `?`, no character class and no escape, so a literal `*` cannot be required). The pattern is
 * anchored at both ends: without a `*` it is plain equality, so "repo:acme/app" does not match
 * "repo:acme/app:ref:refs/heads/main" nor "repo:acme/app-fork"; "repo:acme/app:*" matches the
 * former, and "repo:acme/*" matches both and anything else under acme. Linear time, no regex.
 */
export function globMatch(pattern: string, value: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === value;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (value.length < first.length + last.length) return false;
  if (!value.startsWith(first) || !value.endsWith(last)) return false;
  let pos = first.length;
  const end = value.length - last.length;
  // Leftmost placement of each middle literal is optimal when `*` is the only wildcard.
  for (const part of parts.slice(1, -1)) {
    if (part === "") continue;
    const at = value.indexOf(part, pos);
    if (at < 0 || at + part.length > end) return false;
    pos = at + part.length;
  }
  return true;
}

/** The token's `aud` (a string or an array of strings) contains one of the trust's audiences. */
export function audienceMatches(trust: TrustRelationship, aud: unknown): boolean {
  const presented =
    typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === "string") : [];
  return presented.some((a) => trust.audiences.includes(a));
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

/**
 * Whether verified claims fit the trust's provider-specific rules (issuer and audience are
 * checked by the verifier, not here).
 * - github: `repository_owner` and `repository` equal the trust's, ignoring ASCII case (GitHub
 *   names are case-insensitive), whole strings only; and each pin the trust sets (repository_id,
 *   repository_owner_id, environment exactly; ref per globMatch) is present and equal.
 * - circleci: `oidc.circleci.com/project-id` equals projectUuid (case-insensitive, UUIDs) and the
 *   token's `iss` is the trust's issuer ending in `/org/<organizationId>` (the org pin; the
 *   configured issuer is used, so an on-premise or test issuer works too).
 * - buildkite: `organization_slug` and `pipeline_slug` equal, exactly.
 * - generic: every configured claim is present, a string, and matches per globMatch.
 */
export function claimsMatch(trust: TrustRelationship, claims: Record<string, unknown>): boolean {
  switch (trust.provider) {
    case "github": {
      const owner = str(claims.repository_owner);
      const repository = str(claims.repository);
      const pinned = (claim: string, want: string | undefined, match = (w: string, v: string) => w === v) => {
        if (want === undefined) return true;
        const v = str(claims[claim]);
        return v !== null && match(want, v);
      };
      return (
        owner !== null &&
        repository !== null &&
        owner.toLowerCase() === trust.owner.toLowerCase() &&
        repository.toLowerCase() === trust.repository.toLowerCase() &&
        pinned("repository_id", trust.repositoryId) &&
        pinned("repository_owner_id", trust.repositoryOwnerId) &&
        pinned("environment", trust.environment) &&
        pinned("ref", trust.ref, globMatch)
      );
    }
    case "circleci": {
      const project = str(claims["oidc.circleci.com/project-id"]);
      return (
        project !== null &&
        project.toLowerCase() === trust.projectUuid.toLowerCase() &&
        claims.iss === trust.issuer &&
        trust.issuer.toLowerCase().endsWith(`/org/${trust.organizationId.toLowerCase()}`)
      );
    }
    case "buildkite":
      return claims.organization_slug === trust.organizationSlug && claims.pipeline_slug === trust.pipelineSlug;
    case "generic":
      return Object.entries(trust.claims).every(([name, pattern]) => {
        const v = str(claims[name]);
        return v !== null && globMatch(pattern, v);
      });
  }
}

// ---- validation -------------------------------------------------------------------------------

const GITHUB_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const GITHUB_ID = /^[1-9][0-9]{0,19}$/;
/** Pins only a GitHub token carries; on another provider they would silently match nothing. */
const GITHUB_PINS = ["repositoryId", "repositoryOwnerId", "ref", "environment"] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BUILDKITE_SLUG = /^[a-z0-9][a-z0-9_-]{0,99}$/;
/** Claims the verifier handles itself; matching them as strings would be wrong or never succeed. */
const RESERVED_CLAIMS = new Set(["aud", "exp", "nbf", "iat"]);
const MAX_AUDIENCES = 16;
const MAX_CLAIMS = 32;
const MAX_STATIC_KEYS = 50;
/** JWK members that only private keys have: a pasted JWKS must be public. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Validates and normalizes an untrusted trust relationship (e.g. an API body plus the id and
 * project the caller assigned). Fills in the provider's default issuer when none is given, lowercases
 * CircleCI UUIDs, drops unknown members. Throws InvalidInputError listing every problem with a JSON
 * pointer.
 *
 * About 160 lines: one case per CI provider, each a few field checks; split per provider they
 * would share the problem list and the result being built, passed around for no gain.
 */
export function validateTrust(input: unknown, allowInternal?: InternalAllowance): TrustRelationship {
  const errors: { pointer: string; detail: string }[] = [];
  const bad = (pointer: string, detail: string) => errors.push({ pointer, detail });
  if (!isObject(input))
    throw new InvalidInputError("invalid trust relationship", [{ pointer: "", detail: "must be an object" }]);

  const text = (name: string, max = 256): string => {
    const v = input[name];
    if (typeof v !== "string" || v.length === 0) bad(`/${name}`, "must be a non-empty string");
    else if (v.length > max) bad(`/${name}`, `must be at most ${max} characters`);
    else return v;
    return "";
  };

  const id = text("id");
  const projectId = text("projectId");
  const provider = input.provider;
  if (provider !== "github" && provider !== "circleci" && provider !== "buildkite" && provider !== "generic") {
    bad("/provider", "must be one of github, circleci, buildkite, generic");
    throw new InvalidInputError("invalid trust relationship", errors);
  }

  const audiences: string[] = [];
  if (!Array.isArray(input.audiences) || input.audiences.length === 0) bad("/audiences", "must be a non-empty array");
  else if (input.audiences.length > MAX_AUDIENCES) bad("/audiences", `must have at most ${MAX_AUDIENCES} entries`);
  else
    input.audiences.forEach((a: unknown, i) => {
      if (typeof a !== "string" || a.length === 0 || a.length > 256 || a.trim() !== a) {
        bad(`/audiences/${i}`, "must be a non-empty string of at most 256 characters without surrounding spaces");
      } else if (!audiences.includes(a)) audiences.push(a);
    });

  const staticJwks = input.staticJwks === undefined ? undefined : validateJwks(input.staticJwks, bad);
  if (provider !== "github")
    for (const pin of GITHUB_PINS)
      if (input[pin] !== undefined)
        bad(`/${pin}`, "is a GitHub pin (provider github); other issuers match claims with a generic trust");

  let trust: TrustRelationship;
  switch (provider) {
    case "github": {
      const owner = text("owner");
      const repository = text("repository");
      if (owner && !GITHUB_NAME.test(owner)) bad("/owner", "must be a GitHub name: letters, digits, '-', '_', '.'");
      if (repository) {
        const [repoOwner, name, ...rest] = repository.split("/");
        if (
          rest.length > 0 ||
          !repoOwner ||
          !name ||
          !GITHUB_NAME.test(repoOwner) ||
          !GITHUB_NAME.test(name) ||
          name === "." ||
          name === ".."
        ) {
          bad("/repository", "must be 'owner/name' with GitHub names");
        } else if (owner && repoOwner.toLowerCase() !== owner.toLowerCase()) {
          bad("/repository", "its owner part must equal owner");
        }
      }
      trust = { id, projectId, provider, issuer: "", audiences, owner, repository };
      for (const [name, claim] of [
        ["repositoryId", "repository_id"],
        ["repositoryOwnerId", "repository_owner_id"],
      ] as const) {
        const v = input[name];
        if (v === undefined) continue;
        if (typeof v !== "string" || !GITHUB_ID.test(v))
          bad(`/${name}`, `must be GitHub's numeric ${claim}, as a string of digits`);
        else trust[name] = v;
      }
      if (input.ref !== undefined) {
        const ref = input.ref;
        if (typeof ref !== "string" || !/^refs\/[\x21-\x7e]{1,250}$/.test(ref) || /^refs\/\*+$/.test(ref))
          bad("/ref", "must be a full ref such as refs/heads/main or refs/tags/v*, exact or a glob with *");
        else trust.ref = ref;
      }
      if (input.environment !== undefined) {
        const env = input.environment;
        if (
          typeof env !== "string" ||
          env.length === 0 ||
          env.length > 255 ||
          env.trim() !== env ||
          // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
          /[\x00-\x1f]/.test(env)
        )
          bad("/environment", "must be a GitHub environment name");
        else trust.environment = env;
      }
      break;
    }
    case "circleci": {
      const organizationId = text("organizationId").toLowerCase();
      const projectUuid = text("projectUuid").toLowerCase();
      if (organizationId && !UUID.test(organizationId)) bad("/organizationId", "must be a UUID");
      if (projectUuid && !UUID.test(projectUuid)) bad("/projectUuid", "must be a UUID");
      trust = { id, projectId, provider, issuer: "", audiences, organizationId, projectUuid };
      break;
    }
    case "buildkite": {
      const organizationSlug = text("organizationSlug", 100);
      const pipelineSlug = text("pipelineSlug", 100);
      if (organizationSlug && !BUILDKITE_SLUG.test(organizationSlug))
        bad("/organizationSlug", "must be a Buildkite slug: lowercase letters, digits, '-', '_'");
      if (pipelineSlug && !BUILDKITE_SLUG.test(pipelineSlug))
        bad("/pipelineSlug", "must be a Buildkite slug: lowercase letters, digits, '-', '_'");
      trust = { id, projectId, provider, issuer: "", audiences, organizationSlug, pipelineSlug };
      break;
    }
    case "generic": {
      const claims: Record<string, string> = {};
      if (!isObject(input.claims) || Object.keys(input.claims).length === 0)
        bad("/claims", "must name at least one claim");
      else if (Object.keys(input.claims).length > MAX_CLAIMS) bad("/claims", `must have at most ${MAX_CLAIMS} claims`);
      else
        for (const [name, value] of Object.entries(input.claims)) {
          const pointer = `/claims/${name.replace(/~/g, "~0").replace(/\//g, "~1")}`;
          if (name.trim() === "" || name.length > 256) bad(pointer, "claim names must be non-empty");
          else if (RESERVED_CLAIMS.has(name))
            bad(pointer, "aud, exp, nbf and iat are checked by the verifier, not as claims");
          else if (typeof value !== "string" || value.length === 0 || value.length > 1024)
            bad(pointer, "must be a non-empty string (exact value or glob with *)");
          else if (/^\*+$/.test(value)) bad(pointer, "a bare '*' would match any value; name the value");
          else claims[name] = value;
        }
      trust = { id, projectId, provider, issuer: "", audiences, claims };
      break;
    }
  }

  const given = input.issuer;
  let issuer: string | undefined;
  if (given === undefined) {
    if (trust.provider === "generic") bad("/issuer", "is required for a generic provider");
    else if (trust.provider === "circleci") issuer = circleciIssuer(trust.organizationId);
    else issuer = trust.provider === "github" ? GITHUB_ISSUER : BUILDKITE_ISSUER;
  } else if (typeof given !== "string" || given.length === 0 || given.length > 512) {
    bad("/issuer", "must be a non-empty string of at most 512 characters");
  } else {
    issuer = given;
  }
  if (issuer !== undefined) {
    const problem = urlProblem(issuer, "issuer", allowInternal);
    if (problem) bad("/issuer", problem);
    if (
      trust.provider === "circleci" &&
      trust.organizationId &&
      !issuer.toLowerCase().endsWith(`/org/${trust.organizationId}`)
    ) {
      bad("/issuer", "a CircleCI issuer must end with /org/<organizationId>");
    }
    trust.issuer = issuer;
  }

  if (errors.length > 0) throw new InvalidInputError("invalid trust relationship", errors);
  if (staticJwks) trust.staticJwks = staticJwks;
  return trust;
}

function validateJwks(v: unknown, bad: (pointer: string, detail: string) => void): JsonWebKeySet | undefined {
  if (!isObject(v) || !Array.isArray(v.keys) || v.keys.length === 0) {
    bad("/staticJwks", "must be a JWKS: { keys: [ ... ] } with at least one key");
    return undefined;
  }
  if (v.keys.length > MAX_STATIC_KEYS) {
    bad("/staticJwks/keys", `must have at most ${MAX_STATIC_KEYS} keys`);
    return undefined;
  }
  const kids = new Set<string>();
  const keys: Jwk[] = [];
  for (const [i, k] of (v.keys as unknown[]).entries()) {
    const at = `/staticJwks/keys/${i}`;
    if (!isObject(k)) {
      bad(at, "must be a JWK object");
      continue;
    }
    if (PRIVATE_MEMBERS.some((m) => m in k)) {
      bad(at, "must be a public key (private key material was pasted)");
      continue;
    }
    if (typeof k.kid !== "string" || k.kid.length === 0) {
      bad(`${at}/kid`, "must be a non-empty string");
      continue;
    }
    if (kids.has(k.kid)) {
      bad(`${at}/kid`, "duplicate kid");
      continue;
    }
    kids.add(k.kid);
    const rsa = k.kty === "RSA" && typeof k.n === "string" && typeof k.e === "string";
    const ec = k.kty === "EC" && k.crv === "P-256" && typeof k.x === "string" && typeof k.y === "string";
    if (!rsa && !ec) {
      bad(at, "must be an RSA key (n, e) or an EC P-256 key (x, y)");
      continue;
    }
    keys.push(k as Jwk);
  }
  return { keys };
}
