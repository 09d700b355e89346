/**
 * @module auth/oidc/verify.test
 * End to end against real loopback issuers: tokens shaped like GitHub Actions, CircleCI and
 * Buildkite ones, verified against trust relationships. The attack corpus — each refused with its
 * own reason — and the good paths (several providers, two matching trusts, key rotation, pasted
 * JWKS with the issuer offline). Time is an injected clock, never a sleep.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseAllowInternal } from "./address.ts";
import { pinnedGetFactory, type DocumentGet } from "./fetch.ts";
import { oidcKeysFactory } from "./keys.ts";
import {
  b64url,
  buildkiteClaims,
  circleciClaims,
  githubClaims,
  rejectionReason,
  startTestIssuer,
  type TestIssuer,
} from "../../../test/support/oidc-issuer.ts";
import type { TrustRelationship } from "./trust-rules.ts";
import { ciTokenVerifierFactory } from "./verify.ts";

const ORG = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f";
const PROJECT = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const AUD = "https://slipway.example.com";

let idp: TestIssuer; // GitHub-, Buildkite- and generic-style tokens
let cci: TestIssuer; // CircleCI-style: issuer …/org/<uuid>, ES256 only
let github: TrustRelationship;
let buildkite: TrustRelationship;
let circleci: TrustRelationship;

beforeAll(async () => {
  [idp, cci] = await Promise.all([startTestIssuer(), startTestIssuer({ path: `/org/${ORG}`, algs: ["ES256"] })]);
  github = {
    id: "otr_gh",
    projectId: "prj_1",
    provider: "github",
    issuer: idp.issuer,
    audiences: [AUD],
    owner: "acme",
    repository: "acme/app",
  };
  buildkite = {
    id: "otr_bk",
    projectId: "prj_1",
    provider: "buildkite",
    issuer: idp.issuer,
    audiences: [AUD],
    organizationSlug: "acme",
    pipelineSlug: "app",
  };
  circleci = {
    id: "otr_cc",
    projectId: "prj_1",
    provider: "circleci",
    issuer: cci.issuer,
    audiences: [ORG],
    organizationId: ORG,
    projectUuid: PROJECT,
  };
});
afterAll(async () => {
  await Promise.all([idp.stop(), cci.stop()]);
});

/** A fresh verifier (fresh key cache) on a controllable clock; counts every fetch. */
function setup(start = Date.UTC(2030, 0, 1, 12)) {
  let t = start;
  const calls: string[] = [];
  const allowInternal = parseAllowInternal("127.0.0.0/8"); // the test issuers listen on loopback
  const real = pinnedGetFactory({ allowInternal });
  const getCounting: DocumentGet = (url, what) => {
    calls.push(url);
    return real(url, what);
  };
  const now = () => new Date(t);
  const keys = oidcKeysFactory({ get: getCounting, allowInternal, now });
  const verifier = ciTokenVerifierFactory({ keys, now });
  return {
    verify: verifier.verify,
    calls,
    seconds: () => Math.floor(t / 1000),
    advance: (ms: number) => void (t += ms),
    /** The reason the token is refused with; also checks that the reason does not echo the token. */
    async reason(token: string, trusts: TrustRelationship[]) {
      const r = await rejectionReason(() => verifier.verify(token, trusts));
      for (const part of token.split(".")) if (part.length > 8) expect(r).not.toContain(part);
      return r;
    },
  };
}

describe("good paths", () => {
  test("an RS256 GitHub Actions token matches its repository's trust", async () => {
    const s = setup();
    const claims = githubClaims(idp.issuer, s.seconds());
    const token = await idp.mint(claims, { alg: "RS256" });
    const r = await s.verify(token, [github, buildkite, circleci]);
    expect(r.matched.map((t) => t.id)).toEqual(["otr_gh"]);
    expect(r.claims).toEqual(claims);
    expect(r.expiresAt).toEqual(new Date((s.seconds() + 300) * 1000));
    expect(s.calls.length).toBe(2); // discovery + JWKS of idp only; cci never contacted
  });

  test("an ES256 CircleCI token matches on project id with the org pinned by the issuer", async () => {
    const s = setup();
    const token = await cci.mint(
      circleciClaims(cci.issuer, { organizationId: ORG, projectUuid: PROJECT }, s.seconds()),
    );
    expect(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).alg).toBe("ES256");
    const r = await s.verify(token, [github, circleci]);
    expect(r.matched.map((t) => t.id)).toEqual(["otr_cc"]);
    const other = await cci.mint(
      circleciClaims(
        cci.issuer,
        { organizationId: ORG, projectUuid: "00000000-0000-4000-8000-000000000000" },
        s.seconds(),
      ),
    );
    expect(await s.reason(other, [circleci])).toBe("oidc: no trust relationship matches");
  });

  test("a Buildkite token matches on organization and pipeline slugs", async () => {
    const s = setup();
    const r = await s.verify(await idp.mint(buildkiteClaims(idp.issuer, s.seconds()), { alg: "ES256" }), [
      github,
      buildkite,
    ]);
    expect(r.matched.map((t) => t.id)).toEqual(["otr_bk"]);
    const fork = await idp.mint(buildkiteClaims(idp.issuer, s.seconds(), { pipeline_slug: "app-fork" }));
    expect(await s.reason(fork, [buildkite])).toBe("oidc: no trust relationship matches");
  });

  test("a generic trust matches with globs; a token matching two trusts returns both", async () => {
    const s = setup();
    const generic: TrustRelationship = {
      id: "otr_gen",
      projectId: "prj_1",
      provider: "generic",
      issuer: idp.issuer,
      audiences: ["other", AUD],
      claims: { sub: "repo:acme/app:ref:refs/heads/*", event_name: "push" },
    };
    const token = await idp.mint(githubClaims(idp.issuer, s.seconds()));
    const r = await s.verify(token, [github, generic, buildkite]);
    expect(r.matched.map((t) => t.id)).toEqual(["otr_gh", "otr_gen"]);
    const pr = await idp.mint(githubClaims(idp.issuer, s.seconds(), { event_name: "pull_request" }));
    expect((await s.verify(pr, [github, generic])).matched.map((t) => t.id)).toEqual(["otr_gh"]);
  });

  test("key rotation: a token with a new kid verifies once the refetch interval has passed", async () => {
    const s = setup();
    await s.verify(await idp.mint(githubClaims(idp.issuer, s.seconds())), [github]);
    const fresh = await idp.rotate({ alg: "RS256" });
    s.advance(5_000);
    const early = await idp.mint(githubClaims(idp.issuer, s.seconds()), { kid: fresh.kid });
    expect(await s.reason(early, [github])).toBe("oidc: unknown key id");
    s.advance(60_000);
    const later = await idp.mint(githubClaims(idp.issuer, s.seconds()), { kid: fresh.kid });
    expect((await s.verify(later, [github])).matched.map((t) => t.id)).toEqual(["otr_gh"]);
  });

  test("a pasted static JWKS verifies with the issuer offline; an unknown kid is refused without any fetch", async () => {
    const offline = await startTestIssuer();
    const jwks = offline.jwks();
    await offline.stop();
    const s = setup();
    const pinned: TrustRelationship = { ...github, id: "otr_static", issuer: offline.issuer, staticJwks: jwks };
    const r = await s.verify(await offline.mint(githubClaims(offline.issuer, s.seconds())), [pinned]);
    expect(r.matched.map((t) => t.id)).toEqual(["otr_static"]);
    const stranger = await offline.mint(githubClaims(offline.issuer, s.seconds()), {
      kid: "not-pasted",
      signWith: jwks.keys[0]!.kid!,
    });
    expect(await s.reason(stranger, [pinned])).toBe("oidc: unknown key id in static JWKS");
    expect(s.calls).toEqual([]);
  });

  test("a trust with a pasted JWKS accepts only those keys, even beside a trust that fetches", async () => {
    const s = setup();
    const other = await startTestIssuer({ algs: ["ES256"] });
    await other.stop();
    const pinned: TrustRelationship = { ...github, id: "otr_pinned", staticJwks: other.jwks() };
    const token = await idp.mint(githubClaims(idp.issuer, s.seconds()));
    expect(await s.reason(token, [pinned])).toBe("oidc: unknown key id in static JWKS");
    expect((await s.verify(token, [pinned, github])).matched.map((t) => t.id)).toEqual(["otr_gh"]);
  });
});

describe("refused tokens, each with its own reason", () => {
  test("alg none", async () => {
    const s = setup();
    const token = await idp.mint(githubClaims(idp.issuer, s.seconds()), { alg: "none" });
    expect(token.endsWith(".")).toBe(true);
    expect(await s.reason(token, [github])).toBe("oidc: algorithm none not allowed");
    expect(s.calls).toEqual([]);
  });

  test("HS256 signed with the RSA public key as the HMAC secret (algorithm confusion)", async () => {
    const s = setup();
    const rsa = idp.published().find((k) => k.alg === "RS256")!;
    for (const secret of [rsa.publicPem, JSON.stringify(rsa.publicJwk)]) {
      const token = await idp.mint(githubClaims(idp.issuer, s.seconds()), {
        alg: "HS256",
        kid: rsa.kid,
        hmacSecret: new TextEncoder().encode(secret),
      });
      expect(await s.reason(token, [github])).toBe("oidc: algorithm HS256 not allowed");
    }
    expect(s.calls).toEqual([]);
  });

  test("unknown kid, and the JWKS is refetched at most once per interval", async () => {
    const s = setup();
    await s.verify(await idp.mint(githubClaims(idp.issuer, s.seconds())), [github]);
    const jwksFetches = () => s.calls.filter((u) => u.endsWith("/jwks")).length;
    expect(jwksFetches()).toBe(1);
    const signWith = idp.published()[0]!.kid;
    for (let i = 0; i < 20; i++) {
      const token = await idp.mint(githubClaims(idp.issuer, s.seconds()), { kid: `spray-${i}`, signWith });
      expect(await s.reason(token, [github])).toBe("oidc: unknown key id");
    }
    expect(jwksFetches()).toBe(1);
    s.advance(60_000);
    for (let i = 20; i < 40; i++) {
      const token = await idp.mint(githubClaims(idp.issuer, s.seconds()), { kid: `spray-${i}`, signWith });
      expect(await s.reason(token, [github])).toBe("oidc: unknown key id");
    }
    expect(jwksFetches()).toBe(2);
  });

  test("tampered payload", async () => {
    const s = setup();
    const [h, , sig] = (await idp.mint(githubClaims(idp.issuer, s.seconds()))).split(".");
    const forged = githubClaims(idp.issuer, s.seconds(), {
      repository: "acme/app",
      repository_owner: "acme",
      ref: "refs/heads/release",
    });
    expect(await s.reason(`${h}.${b64url(JSON.stringify(forged))}.${sig}`, [github])).toBe("oidc: bad signature");
  });

  test("wrong issuer", async () => {
    const s = setup();
    const token = await idp.mint(githubClaims("https://token.actions.githubusercontent.com", s.seconds()));
    expect(await s.reason(token, [github])).toBe("oidc: no trust relationship for issuer");
    const noIss = await idp.mint(githubClaims(idp.issuer, s.seconds(), { iss: undefined }));
    expect(await s.reason(noIss, [github])).toBe("oidc: iss missing");
    expect(s.calls).toEqual([]);
  });

  test("wrong audience", async () => {
    const s = setup();
    for (const aud of ["https://evil.example.com", ["a", "b"], `${AUD}/`, undefined]) {
      const token = await idp.mint(githubClaims(idp.issuer, s.seconds(), { aud }));
      expect(await s.reason(token, [github])).toBe(
        aud === undefined ? "oidc: aud missing" : "oidc: audience not allowed",
      );
    }
    const many = await idp.mint(githubClaims(idp.issuer, s.seconds(), { aud: ["x", AUD] }));
    expect((await s.verify(many, [github])).matched).toHaveLength(1);
  });

  test("expired (beyond the skew), and missing exp", async () => {
    const s = setup();
    const now = s.seconds();
    const expired = await idp.mint(githubClaims(idp.issuer, now, { iat: now - 400, nbf: now - 400, exp: now - 61 }));
    expect(await s.reason(expired, [github])).toBe("oidc: token expired");
    const withinSkew = await idp.mint(githubClaims(idp.issuer, now, { iat: now - 400, nbf: now - 400, exp: now - 30 }));
    expect((await s.verify(withinSkew, [github])).matched).toHaveLength(1);
    expect(await s.reason(await idp.mint(githubClaims(idp.issuer, now, { exp: undefined })), [github])).toBe(
      "oidc: exp missing",
    );
    expect(await s.reason(await idp.mint(githubClaims(idp.issuer, now, { exp: "soon" })), [github])).toBe(
      "oidc: exp invalid",
    );
  });

  test("nbf in the future", async () => {
    const s = setup();
    const now = s.seconds();
    expect(await s.reason(await idp.mint(githubClaims(idp.issuer, now, { nbf: now + 120 })), [github])).toBe(
      "oidc: token not yet valid",
    );
    expect(
      (await s.verify(await idp.mint(githubClaims(idp.issuer, now, { nbf: now + 30 })), [github])).matched,
    ).toHaveLength(1);
  });

  test("iat too old, in the future, or missing", async () => {
    const s = setup();
    const now = s.seconds();
    const old = await idp.mint(
      githubClaims(idp.issuer, now, { iat: now - 3600 - 61, nbf: now - 3700, exp: now + 600 }),
    );
    expect(await s.reason(old, [github])).toBe("oidc: token too old");
    expect(await s.reason(await idp.mint(githubClaims(idp.issuer, now, { iat: now + 120 })), [github])).toBe(
      "oidc: iat in the future",
    );
    expect(await s.reason(await idp.mint(githubClaims(idp.issuer, now, { iat: undefined })), [github])).toBe(
      "oidc: iat missing",
    );
  });

  test("wrong repository, and forks", async () => {
    const s = setup();
    const now = s.seconds();
    for (const over of [
      { repository: "acme/other", sub: "repo:acme/other:ref:refs/heads/main" },
      { repository: "evil/app", repository_owner: "evil", sub: "repo:evil/app:ref:refs/heads/main" },
      { repository: "acme/app-fork", sub: "repo:acme/app-fork:ref:refs/heads/main" },
      { repository: "acme/app", repository_owner: "acme-evil" },
    ]) {
      expect(await s.reason(await idp.mint(githubClaims(idp.issuer, now, over)), [github])).toBe(
        "oidc: no trust relationship matches",
      );
    }
  });

  test("a claim that only matches as a prefix does not match without a *", async () => {
    const s = setup();
    const exact: TrustRelationship = {
      id: "otr_exact",
      projectId: "prj_1",
      provider: "generic",
      issuer: idp.issuer,
      audiences: [AUD],
      claims: { sub: "repo:acme/app" },
    };
    const token = await idp.mint(githubClaims(idp.issuer, s.seconds()));
    expect(await s.reason(token, [exact])).toBe("oidc: no trust relationship matches");
    const glob: TrustRelationship = { ...exact, id: "otr_glob", claims: { sub: "repo:acme/app:*" } };
    expect((await s.verify(token, [glob])).matched.map((t) => t.id)).toEqual(["otr_glob"]);
    const fork = await idp.mint(
      githubClaims(idp.issuer, s.seconds(), { sub: "repo:acme/app-fork:ref:refs/heads/main" }),
    );
    expect(await s.reason(fork, [glob])).toBe("oidc: no trust relationship matches");
  });

  test("an ES256 token whose kid names an RSA key", async () => {
    const s = setup();
    const rsa = idp.published().find((k) => k.alg === "RS256")!;
    const ec = idp.published().find((k) => k.alg === "ES256")!;
    const token = await idp.mint(githubClaims(idp.issuer, s.seconds()), {
      alg: "ES256",
      kid: rsa.kid,
      signWith: ec.kid,
    });
    expect(await s.reason(token, [github])).toBe("oidc: key type does not match algorithm");
  });

  test("malformed tokens: 2 parts, bad base64, non-JSON", async () => {
    const s = setup();
    const [h, p] = (await idp.mint(githubClaims(idp.issuer, s.seconds()))).split(".");
    expect(await s.reason(`${h}.${p}`, [github])).toBe("oidc: malformed token: expected 3 parts");
    expect(await s.reason(`${h}.${p}!!.c2ln`, [github])).toBe("oidc: malformed token: payload is not base64url JSON");
    expect(await s.reason(`${h}.${b64url("{not json")}.c2ln`, [github])).toBe(
      "oidc: malformed token: payload is not base64url JSON",
    );
    expect(await s.reason(`${b64url('"RS256"')}.${p}.c2ln`, [github])).toBe(
      "oidc: malformed token: header is not base64url JSON",
    );
    expect(s.calls).toEqual([]);
  });

  test("an http:// issuer the operator does not allow is refused without fetching", async () => {
    const s = setup();
    const plain: TrustRelationship = { ...github, issuer: "http://idp.example.com" };
    const token = await idp.mint(githubClaims("http://idp.example.com", s.seconds()));
    expect(await s.reason(token, [plain])).toBe(
      "oidc: issuer must use https:// (http:// only for issuers the operator allows with oidc.allow_internal)",
    );
    expect(s.calls).toEqual([]);
  });

  test("a discovery document whose issuer differs is refused", async () => {
    const s = setup();
    cci.overrides.discoveryIssuer = `${cci.issuer}/other`;
    try {
      const token = await cci.mint(
        circleciClaims(cci.issuer, { organizationId: ORG, projectUuid: PROJECT }, s.seconds()),
      );
      expect(await s.reason(token, [circleci])).toBe("oidc: discovery issuer mismatch");
    } finally {
      delete cci.overrides.discoveryIssuer;
    }
  });
});
