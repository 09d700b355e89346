/**
 * @module auth/oidc/trust-rules.test
 * Trust relationship validation (field pointers, defaults, normalization), the anchored glob, and
 * per-provider claim matching — especially what must NOT match: forks, prefixes, look-alike owners.
 */
import { describe, expect, test } from "bun:test";
import { InvalidInputError } from "../../errors.ts";
import {
  audienceMatches,
  claimsMatch,
  defaultIssuer,
  globMatch,
  validateTrust,
  type TrustRelationship,
} from "./trust-rules.ts";

const ORG = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f";
const PROJECT = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

function pointers(input: unknown): string[] {
  try {
    validateTrust(input);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return (e as InvalidInputError).errors.map((x) => x.pointer);
  }
  throw new Error("expected InvalidInputError");
}

const base = { id: "otr_1", projectId: "prj_1", audiences: ["https://slipway.example.com"] };

describe("globMatch", () => {
  test("without * it is exact equality: no prefix, no substring", () => {
    expect(globMatch("repo:acme/app", "repo:acme/app")).toBe(true);
    expect(globMatch("repo:acme/app", "repo:acme/app:ref:refs/heads/main")).toBe(false);
    expect(globMatch("repo:acme/app", "repo:acme/app-fork")).toBe(false);
    expect(globMatch("repo:acme/app", "xrepo:acme/app")).toBe(false);
    expect(globMatch("a.b", "axb")).toBe(false); // no regex semantics
  });

  test("* matches any run of characters, anchored at both ends", () => {
    expect(globMatch("repo:acme/app:*", "repo:acme/app:ref:refs/heads/main")).toBe(true);
    expect(globMatch("repo:acme/app:*", "repo:acme/app-fork:ref:refs/heads/main")).toBe(false);
    expect(globMatch("repo:acme/*", "repo:acme/x:extra")).toBe(true);
    expect(globMatch("repo:acme/*", "repo:acme/")).toBe(true);
    expect(globMatch("repo:acme/*", "repo:evil/acme/x")).toBe(false);
    expect(globMatch("repo:*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main")).toBe(true);
    expect(globMatch("repo:*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main-evil")).toBe(false);
    expect(globMatch("*:environment:prod", "repo:acme/app:environment:prod")).toBe(true);
    expect(globMatch("a*b*c", "abc")).toBe(true);
    expect(globMatch("a*b*c", "a-b-b-c")).toBe(true);
    expect(globMatch("a*b*c", "a-c-b")).toBe(false);
    expect(globMatch("ab*ba", "aba")).toBe(false); // the literals may not overlap
    expect(globMatch("a**b", "ab")).toBe(true);
  });
});

describe("validateTrust", () => {
  test("fills in default issuers and normalizes", () => {
    const gh = validateTrust({ ...base, provider: "github", owner: "Acme", repository: "acme/App", extra: 1 });
    expect(gh).toEqual({
      ...base,
      provider: "github",
      issuer: "https://token.actions.githubusercontent.com",
      owner: "Acme",
      repository: "acme/App",
    });
    const cc = validateTrust({
      ...base,
      provider: "circleci",
      organizationId: ORG.toUpperCase(),
      projectUuid: PROJECT,
    });
    expect(cc).toMatchObject({ issuer: `https://oidc.circleci.com/org/${ORG}`, organizationId: ORG });
    expect(
      validateTrust({ ...base, provider: "buildkite", organizationSlug: "acme", pipelineSlug: "app" }).issuer,
    ).toBe("https://agent.buildkite.com");
    expect(defaultIssuer({ provider: "github", enterpriseHost: "github.example.com" })).toBe(
      "https://github.example.com/_services/token",
    );
    expect(defaultIssuer({ provider: "circleci", organizationId: ORG })).toBe(`https://oidc.circleci.com/org/${ORG}`);
  });

  test("accepts a GitHub Enterprise Server issuer and a pasted public JWKS", () => {
    const t = validateTrust({
      ...base,
      provider: "github",
      issuer: "https://github.example.com/_services/token",
      owner: "acme",
      repository: "acme/app",
      staticJwks: { keys: [{ kty: "EC", crv: "P-256", kid: "k1", x: "eA", y: "eQ" }] },
    });
    expect(t.staticJwks?.keys[0]?.kid).toBe("k1");
  });

  test("GitHub owner and repository syntax", () => {
    expect(pointers({ ...base, provider: "github", owner: "acme corp", repository: "acme corp/app" })).toEqual([
      "/owner",
      "/repository",
    ]);
    expect(pointers({ ...base, provider: "github", owner: "acme", repository: "app" })).toEqual(["/repository"]);
    expect(pointers({ ...base, provider: "github", owner: "acme", repository: "acme/app/x" })).toEqual(["/repository"]);
    expect(pointers({ ...base, provider: "github", owner: "acme", repository: "acme/.." })).toEqual(["/repository"]);
    expect(pointers({ ...base, provider: "github", owner: "acme", repository: "evil/app" })).toEqual(["/repository"]);
    expect(pointers({ ...base, provider: "github", repository: "acme/app" })).toEqual(["/owner"]);
  });

  test("CircleCI UUIDs and the org pinned in the issuer", () => {
    expect(pointers({ ...base, provider: "circleci", organizationId: "acme", projectUuid: "x" })).toEqual([
      "/organizationId",
      "/projectUuid",
    ]);
    expect(
      pointers({
        ...base,
        provider: "circleci",
        organizationId: ORG,
        projectUuid: PROJECT,
        issuer: "https://oidc.circleci.com/org/other",
      }),
    ).toEqual(["/issuer"]);
  });

  test("Buildkite slugs", () => {
    expect(pointers({ ...base, provider: "buildkite", organizationSlug: "Acme", pipelineSlug: "my pipeline" })).toEqual(
      ["/organizationSlug", "/pipelineSlug"],
    );
  });

  test("generic: an issuer and at least one meaningful claim", () => {
    expect(pointers({ ...base, provider: "generic", claims: { sub: "x" } })).toEqual(["/issuer"]);
    expect(pointers({ ...base, provider: "generic", issuer: "https://idp.example.com", claims: {} })).toEqual([
      "/claims",
    ]);
    expect(
      pointers({
        ...base,
        provider: "generic",
        issuer: "https://idp.example.com",
        claims: { "": "x", "a/b": "", aud: "x", sub: "**" },
      }),
    ).toEqual(["/claims/", "/claims/a~1b", "/claims/aud", "/claims/sub"]);
  });

  test("common fields: ids, provider, audiences, issuer URL, static JWKS", () => {
    expect(pointers(null)).toEqual([""]);
    expect(pointers({ ...base, provider: "jenkins" })).toEqual(["/provider"]);
    expect(pointers({ provider: "buildkite", organizationSlug: "a", pipelineSlug: "b", audiences: [] })).toEqual([
      "/id",
      "/projectId",
      "/audiences",
    ]);
    expect(
      pointers({
        ...base,
        audiences: ["ok", "", " pad", 3],
        provider: "buildkite",
        organizationSlug: "a",
        pipelineSlug: "b",
      }),
    ).toEqual(["/audiences/1", "/audiences/2", "/audiences/3"]);
    expect(pointers({ ...base, provider: "generic", issuer: "http://idp.example.com", claims: { sub: "x" } })).toEqual([
      "/issuer",
    ]);
    expect(
      pointers({ ...base, provider: "generic", issuer: "https://idp.example.com#x", claims: { sub: "x" } }),
    ).toEqual(["/issuer"]);
    const jwks = {
      keys: [
        { kty: "RSA", kid: "a", n: "x", e: "AQAB", d: "secret" },
        { kty: "oct", kid: "b", k: "x" },
        { kty: "EC", crv: "P-384", kid: "c", x: "x", y: "y" },
        { kty: "RSA", n: "x", e: "AQAB" },
      ],
    };
    expect(
      pointers({ ...base, provider: "buildkite", organizationSlug: "a", pipelineSlug: "b", staticJwks: jwks }),
    ).toEqual(["/staticJwks/keys/0", "/staticJwks/keys/1", "/staticJwks/keys/2", "/staticJwks/keys/3/kid"]);
    expect(
      pointers({ ...base, provider: "buildkite", organizationSlug: "a", pipelineSlug: "b", staticJwks: { keys: [] } }),
    ).toEqual(["/staticJwks"]);
  });
});

describe("claimsMatch", () => {
  const gh: TrustRelationship = {
    ...base,
    provider: "github",
    issuer: "https://token.actions.githubusercontent.com",
    owner: "acme",
    repository: "acme/app",
  };

  test("github: owner and repository, whole names, case-insensitive", () => {
    expect(claimsMatch(gh, { repository_owner: "acme", repository: "acme/app" })).toBe(true);
    expect(claimsMatch(gh, { repository_owner: "ACME", repository: "Acme/App" })).toBe(true);
    expect(claimsMatch(gh, { repository_owner: "evil", repository: "evil/app" })).toBe(false);
    expect(claimsMatch(gh, { repository_owner: "acme", repository: "acme/app-fork" })).toBe(false);
    expect(claimsMatch(gh, { repository_owner: "acme-evil", repository: "acme/app" })).toBe(false);
    expect(claimsMatch(gh, { repository: "acme/app" })).toBe(false);
    expect(claimsMatch(gh, { repository_owner: "acme", repository: ["acme/app"] })).toBe(false);
  });

  test("circleci: project id, and the org pinned by the configured issuer", () => {
    const issuer = `http://127.0.0.1:1/org/${ORG}`;
    const cc: TrustRelationship = { ...base, provider: "circleci", issuer, organizationId: ORG, projectUuid: PROJECT };
    expect(claimsMatch(cc, { iss: issuer, "oidc.circleci.com/project-id": PROJECT })).toBe(true);
    expect(claimsMatch(cc, { iss: issuer, "oidc.circleci.com/project-id": PROJECT.toUpperCase() })).toBe(true);
    expect(claimsMatch(cc, { iss: issuer, "oidc.circleci.com/project-id": ORG })).toBe(false);
    expect(claimsMatch(cc, { iss: `${issuer}x`, "oidc.circleci.com/project-id": PROJECT })).toBe(false);
    expect(
      claimsMatch(
        { ...cc, issuer: "http://127.0.0.1:1/org/other" },
        { iss: "http://127.0.0.1:1/org/other", "oidc.circleci.com/project-id": PROJECT },
      ),
    ).toBe(false);
  });

  test("buildkite: organization and pipeline slugs, exactly", () => {
    const bk: TrustRelationship = {
      ...base,
      provider: "buildkite",
      issuer: "https://agent.buildkite.com",
      organizationSlug: "acme",
      pipelineSlug: "app",
    };
    expect(claimsMatch(bk, { organization_slug: "acme", pipeline_slug: "app" })).toBe(true);
    expect(claimsMatch(bk, { organization_slug: "acme", pipeline_slug: "app-fork" })).toBe(false);
    expect(claimsMatch(bk, { organization_slug: "Acme", pipeline_slug: "app" })).toBe(false);
  });

  test("generic: every claim present, string, matching", () => {
    const g: TrustRelationship = {
      ...base,
      provider: "generic",
      issuer: "https://idp.example.com",
      claims: { sub: "repo:acme/app:*", env: "prod" },
    };
    expect(claimsMatch(g, { sub: "repo:acme/app:ref:refs/heads/main", env: "prod" })).toBe(true);
    expect(claimsMatch(g, { sub: "repo:acme/app:ref:refs/heads/main" })).toBe(false);
    expect(claimsMatch(g, { sub: "repo:acme/app:ref:refs/heads/main", env: ["prod"] })).toBe(false);
    expect(claimsMatch(g, { sub: "repo:acme/app-fork:ref:refs/heads/main", env: "prod" })).toBe(false);
  });

  test("audiences: string or array, exact", () => {
    expect(audienceMatches(gh, "https://slipway.example.com")).toBe(true);
    expect(audienceMatches(gh, ["other", "https://slipway.example.com"])).toBe(true);
    expect(audienceMatches(gh, "https://slipway.example.com/")).toBe(false);
    expect(audienceMatches(gh, ["other"])).toBe(false);
    expect(audienceMatches(gh, undefined)).toBe(false);
  });
});
