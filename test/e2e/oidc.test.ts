/**
 * @module test/e2e/oidc
 * CI OIDC through the API, against a real OIDC issuer on loopback: trust relationships created
 * by owners; GitHub-, CircleCI- and Buildkite-shaped tokens exchanged for a short-lived token
 * that can build exactly the matched project, or presented raw as a Bearer token; and a corpus
 * of bad tokens, each refused with 401 and an audit record that says why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  buildkiteClaims,
  circleciClaims,
  githubClaims,
  startTestIssuer,
  type TestIssuer,
} from "../support/oidc-issuer.ts";
import { makeWorld, WORLD_AUDIENCE, type World } from "../support/world.ts";

const ORG_UUID = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f";
const PROJECT_UUID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
let w: World;
let gh: TestIssuer;
let cci: TestIssuer;
const now = () => Math.floor(Date.now() / 1000);
const bearer = (token: string, method: string, path: string, body?: unknown) =>
  w.handle(
    new Request(`http://localhost${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    }),
  );
const exchange = (token: string) =>
  w.handle(
    new Request("http://localhost/api/v1/oidc/exchange", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    }),
  );

beforeAll(async () => {
  w = await makeWorld();
  [gh, cci] = await Promise.all([startTestIssuer(), startTestIssuer({ path: `/org/${ORG_UUID}`, algs: ["ES256"] })]);
  const add = async (project: string, body: unknown) => {
    const r = await w.call("ownerA", "POST", `/api/v1/projects/${project}/trust`, body);
    expect(r.status).toBe(201);
    return r.json();
  };
  await add(w.ids.p1, { provider: "github", issuer: gh.issuer, owner: "acme", repository: "acme/app" });
  await add(w.ids.p2, {
    provider: "circleci",
    issuer: cci.issuer,
    organizationId: ORG_UUID,
    projectUuid: PROJECT_UUID,
    audiences: [ORG_UUID],
  });
  await add(w.ids.p2, { provider: "buildkite", issuer: gh.issuer, organizationSlug: "acme", pipelineSlug: "app" });
  await add(w.ids.p1, { provider: "generic", issuer: gh.issuer, claims: { sub: "repo:acme/app" } }); // exact: no prefix match
});
afterAll(async () => {
  await Promise.all([gh.stop(), cci.stop()]);
  w.close();
});

describe("trust relationships", () => {
  test("owners manage them; users read; other tenants see nothing", async () => {
    const list = (await (await w.call("userA", "GET", `/api/v1/projects/${w.ids.p1}/trust`)).json()) as {
      provider: string;
      audiences: string[];
    }[];
    expect(list.map((t) => t.provider).sort()).toEqual(["generic", "github"]);
    expect(list[0]!.audiences).toEqual([WORLD_AUDIENCE]); // the default audience is the appliance's URL
    expect(
      (
        await w.call("userA", "POST", `/api/v1/projects/${w.ids.p1}/trust`, {
          provider: "github",
          owner: "x",
          repository: "x/y",
        })
      ).status,
    ).toBe(403);
    expect((await w.call("ownerB", "GET", `/api/v1/projects/${w.ids.p1}/trust`)).status).toBe(404);
  });

  test("bad input is a 400 naming the field, and nothing is created", async () => {
    const before = ((await (await w.call("ownerA", "GET", `/api/v1/projects/${w.ids.p1}/trust`)).json()) as unknown[])
      .length;
    const bad = [
      { provider: "github", owner: "acme", repository: "other/app" },
      { provider: "circleci", organizationId: "not-a-uuid", projectUuid: PROJECT_UUID },
      { provider: "generic", issuer: "http://issuer.example.com", claims: { sub: "x" } },
      { provider: "generic", issuer: gh.issuer, claims: {} },
      { provider: "github", owner: "acme", repository: "acme/app", surprise: 1 },
    ];
    for (const body of bad) {
      const r = await w.call("ownerA", "POST", `/api/v1/projects/${w.ids.p1}/trust`, body);
      expect(r.status).toBe(400);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
    }
    expect(
      ((await (await w.call("ownerA", "GET", `/api/v1/projects/${w.ids.p1}/trust`)).json()) as unknown[]).length,
    ).toBe(before);
  });
});

describe("exchange and raw bearer", () => {
  test("a matching GitHub token exchanges for a token that can build only its project", async () => {
    const jwt = await gh.mint(githubClaims(gh.issuer, now()), { alg: "RS256" });
    const r = await exchange(jwt);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { token: string; expires_at: string; projects: string[] };
    expect(body.token).toMatch(/^slw_x_/);
    expect(body.projects).toEqual([w.ids.p1]);
    expect(Date.parse(body.expires_at) - Date.now()).toBeLessThanOrEqual(3600_000);
    expect(Date.parse(body.expires_at)).toBeLessThanOrEqual((now() + 300) * 1000); // never outlives the CI token
    expect((await bearer(body.token, "GET", `/api/v1/projects/${w.ids.p1}`)).status).toBe(200);
    expect((await bearer(body.token, "GET", `/api/v1/projects/${w.ids.p2}`)).status).toBe(404);
    expect((await bearer(body.token, "PATCH", `/api/v1/projects/${w.ids.p1}`, { builder_cpus: 8 })).status).toBe(403);
    expect((await bearer(body.token, "GET", `/api/v1/orgs/${w.ids.A}`)).status).toBe(404);
    expect(w.audit.list({ orgId: w.ids.A, limit: 5 }).some((e) => e.action === "auth.oidc.exchange")).toBe(true);
  });

  test("the raw CI JWT works as a Bearer token (the depot CLI's flow)", async () => {
    const jwt = await gh.mint(githubClaims(gh.issuer, now()), { alg: "ES256" });
    const list = (await (await bearer(jwt, "GET", "/api/v1/projects")).json()) as { id: string }[];
    expect(list.map((p) => p.id)).toEqual([w.ids.p1]);
  });

  test("CircleCI (ES256) and Buildkite tokens reach their own project", async () => {
    const c = (await (
      await exchange(
        await cci.mint(circleciClaims(cci.issuer, { organizationId: ORG_UUID, projectUuid: PROJECT_UUID }, now())),
      )
    ).json()) as { projects: string[] };
    expect(c.projects).toEqual([w.ids.p2]);
    const b = (await (
      await exchange(await gh.mint(buildkiteClaims(gh.issuer, now(), { aud: WORLD_AUDIENCE })))
    ).json()) as { projects: string[] };
    expect(b.projects).toEqual([w.ids.p2]);
  });
});

describe("bad tokens: 401, and an audit record with the reason", () => {
  const good = () => githubClaims(gh.issuer, now());
  const cases: [string, () => Promise<string>, string][] = [
    ["alg none", () => gh.mint(good(), { alg: "none" }), "algorithm"],
    [
      "HS256 signed with the public key",
      async () =>
        gh.mint(good(), {
          alg: "HS256",
          hmacSecret: new TextEncoder().encode(gh.published()[0]!.publicPem) as Uint8Array<ArrayBuffer>,
        }),
      "algorithm",
    ],
    ["unknown kid", () => gh.mint(good(), { kid: "no-such-kid", signWith: gh.published()[0]!.kid }), "unknown key id"],
    [
      "tampered payload",
      async () => {
        const [h, , s] = (await gh.mint(good())).split(".");
        return `${h}.${Buffer.from(JSON.stringify({ ...good(), repository: "acme/secret" })).toString("base64url")}.${s}`;
      },
      "signature",
    ],
    [
      "an issuer no trust names",
      () => gh.mint({ ...good(), iss: "https://issuer.invalid" }),
      "no trust relationship for issuer",
    ],
    ["wrong audience", () => gh.mint({ ...good(), aud: "https://depot.dev" }), "audience"],
    ["expired", () => gh.mint({ ...good(), iat: now() - 1000, nbf: now() - 1000, exp: now() - 600 }), "expired"],
    ["nbf in the future", () => gh.mint({ ...good(), nbf: now() + 600 }), "not yet valid"],
    ["too old", () => gh.mint({ ...good(), iat: now() - 7200, nbf: now() - 7200, exp: now() + 600 }), "old"],
    [
      "wrong repository",
      () => gh.mint({ ...good(), repository: "acme/other", sub: "repo:acme/other:ref:refs/heads/main" }),
      "matches",
    ],
    [
      "a fork's repository",
      () =>
        gh.mint({
          ...good(),
          repository: "evil/app",
          repository_owner: "evil",
          sub: "repo:evil/app:ref:refs/heads/main",
        }),
      "matches",
    ],
    [
      "a repository that only matches as a prefix",
      () => gh.mint({ ...good(), repository: "acme/app-fork", sub: "repo:acme/app-fork:ref:refs/heads/main" }),
      "matches",
    ],
  ];
  for (const [name, make, reason] of cases) {
    test(name, async () => {
      const jwt = await make();
      const r = await exchange(jwt);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { detail: string }).detail).toBe("invalid or expired credentials"); // the reason stays in the audit log
      const entry = w.audit.list({ limit: 1 })[0]!;
      expect(entry).toMatchObject({ action: "auth.oidc", outcome: "failure" });
      expect(String(entry.details.reason)).toContain(reason);
      expect(JSON.stringify(entry)).not.toContain(jwt);
      expect((await bearer(jwt, "GET", `/api/v1/projects/${w.ids.p1}`)).status).toBe(401);
    });
  }

  test("the generic trust's claim matches exactly, never as a prefix", async () => {
    // sub "repo:acme/app:ref:refs/heads/main" must not satisfy claims {sub: "repo:acme/app"}:
    // this token fails the GitHub trust (other repository) and so must fail overall.
    const jwt = await gh.mint({ ...good(), repository: "acme/x", sub: "repo:acme/app:ref:refs/heads/main" });
    expect((await exchange(jwt)).status).toBe(401);
  });

  test("exchange is rate limited per subject", async () => {
    const jwt = await gh.mint({ ...good(), sub: "repo:acme/spam", repository: "acme/spam" });
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await exchange(jwt)).status);
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses[20]).toBe(429);
  });
});

describe("trust squatting across tenants, and pins (issue 13)", () => {
  // Tenant B's owner adds a trust for tenant A's repository to B's own project q1.
  const exchangeFor = (token: string, project?: string) =>
    w.handle(
      new Request("http://localhost/api/v1/oidc/exchange", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token, ...(project ? { project } : {}) }),
      }),
    );
  const auditOfB = () => w.audit.list({ orgId: w.ids.B, limit: 1000 });
  let bBefore = 0;
  beforeAll(async () => {
    const r = await w.call("ownerB", "POST", `/api/v1/projects/${w.ids.q1}/trust`, {
      provider: "github",
      issuer: gh.issuer,
      owner: "acme",
      repository: "acme/app",
    });
    expect(r.status).toBe(201); // nothing stops B trusting what it likes...
    bBefore = auditOfB().length;
  });

  test("the victim's exchange names its project and gets a token for it alone; the squatter's audit receives nothing", async () => {
    const jwt = await gh.mint(githubClaims(gh.issuer, now(), { sub: "repo:acme/app:ref:refs/heads/squat-test" }));
    for (const project of [w.ids.p1, "org-a/p1"]) {
      const r = await exchangeFor(jwt, project);
      expect(r.status).toBe(200);
      const body = (await r.json()) as { token: string; projects: string[] };
      expect(body.projects).toEqual([w.ids.p1]);
      expect((await bearer(body.token, "GET", `/api/v1/projects/${w.ids.q1}`)).status).toBe(404);
    }
    const mine = w.audit.list({ orgId: w.ids.A, limit: 5 }).filter((e) => e.action === "auth.oidc.exchange");
    expect(mine[0]!.actor).toBe(`oidc:${gh.issuer}#repo:acme/app:ref:refs/heads/squat-test`);
    expect(auditOfB().length).toBe(bBefore);
    expect(JSON.stringify(auditOfB())).not.toContain("squat-test");
  });

  test("an exchange that names no project, when the token matches two, is refused and tells the caller to name one", async () => {
    const jwt = await gh.mint(githubClaims(gh.issuer, now(), { sub: "repo:acme/app:ref:refs/heads/squat-test-2" }));
    const r = await exchangeFor(jwt);
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(((await r.json()) as { detail: string }).detail).toContain('name the one to act for ("project"');
    expect(auditOfB().length).toBe(bBefore);
  });

  test("naming a project whose trusts the token does not match (or that does not exist) is a plain 401", async () => {
    const jwt = await gh.mint(githubClaims(gh.issuer, now()));
    for (const project of [w.ids.p2, "prj_doesnotexist", "org-a/nope"]) {
      const r = await exchangeFor(jwt, project);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { detail: string }).detail).toBe("invalid or expired credentials");
    }
  });

  test("a GitHub trust pinned by repository_id, repository_owner_id, ref and environment refuses a token that differs in any", async () => {
    const pinned = {
      provider: "github",
      issuer: gh.issuer,
      owner: "acme",
      repository: "acme/pinned",
      repositoryId: "424242",
      repositoryOwnerId: "1000001",
      ref: "refs/heads/release/*",
      environment: "prod",
    };
    expect((await w.call("ownerA", "POST", `/api/v1/projects/${w.ids.p2}/trust`, pinned)).status).toBe(201);
    const claims = (over: Record<string, unknown>) =>
      githubClaims(gh.issuer, now(), {
        repository: "acme/pinned",
        repository_id: "424242",
        ref: "refs/heads/release/1.2",
        environment: "prod",
        sub: "repo:acme/pinned:environment:prod",
        ...over,
      });
    expect((await exchangeFor(await gh.mint(claims({})), w.ids.p2)).status).toBe(200);
    for (const over of [
      { repository_id: "2000002" },
      { repository_owner_id: "666" },
      { ref: "refs/heads/main" },
      { environment: "staging" },
      { environment: undefined },
      { repository_id: 424242 },
    ]) {
      const r = await exchangeFor(await gh.mint(claims(over)), w.ids.p2);
      expect(r.status).toBe(401);
      const entry = w.audit.list({ limit: 1 })[0]!;
      expect(entry).toMatchObject({ action: "auth.oidc", outcome: "failure", org_id: null });
      expect(String(entry.details.reason)).toBe("oidc: no trust relationship matches");
    }
  });

  test("pins are validated, and are GitHub's only", async () => {
    for (const [body, pointer] of [
      [{ provider: "github", owner: "acme", repository: "acme/app", repositoryId: "12ab" }, "/repositoryId"],
      [{ provider: "github", owner: "acme", repository: "acme/app", repositoryOwnerId: "" }, "/repositoryOwnerId"],
      [{ provider: "github", owner: "acme", repository: "acme/app", ref: "main" }, "/ref"],
      [{ provider: "github", owner: "acme", repository: "acme/app", environment: " prod" }, "/environment"],
      [{ provider: "buildkite", organizationSlug: "acme", pipelineSlug: "app", ref: "refs/heads/main" }, "/ref"],
    ] as const) {
      const r = await w.call("ownerA", "POST", `/api/v1/projects/${w.ids.p1}/trust`, body);
      expect(r.status).toBe(400);
      expect(JSON.stringify(await r.json())).toContain(pointer);
    }
  });
});
