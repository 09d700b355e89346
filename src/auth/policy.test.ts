/**
 * @module auth/policy.test
 * Every decision of the policy, from one table: each row is an action on a resource, each
 * column an actor, each cell the outcome — ok, 401 (no credentials), 404 (cannot see that
 * tenant's resource), 403 (can see it, may not do it). Any cell that differs fails.
 */
import { describe, expect, test } from "bun:test";
import { ForbiddenError, NotFoundError, UnauthenticatedError } from "../errors.ts";
import { actorLabel, type Actor } from "./actor.ts";
import { authorize, can, canManageUserToken, type Action, type Resource } from "./policy.ts";

const A = "org_a";
const B = "org_b";
const user = (id: string, isAdmin: boolean, memberships: Record<string, "owner" | "user">): Actor => ({
  kind: "user",
  userId: id,
  username: id,
  isAdmin,
  tokenId: null,
  memberships,
});

const ACTORS: Record<string, Actor> = {
  anon: { kind: "anonymous" },
  admin: user("admin", true, {}),
  ownerA: user("ownerA", false, { [A]: "owner" }),
  userA: user("userA", false, { [A]: "user" }),
  ownerB: user("ownerB", false, { [B]: "owner" }),
  userB: user("userB", false, { [B]: "user" }),
  tokA1: { kind: "project-token", tokenId: "t1", orgId: A, projectId: "p1" },
  tokA2: { kind: "project-token", tokenId: "t2", orgId: A, projectId: "p2" },
  orgTokB: { kind: "org-token", tokenId: "t3", orgId: B },
  oidcA1: {
    kind: "oidc",
    tokenId: null,
    issuer: "https://token.actions.githubusercontent.com",
    subject: "repo:acme/app",
    projects: [{ projectId: "p1", orgId: A }],
  },
  agentA: { kind: "agent", tokenId: "rnh1", orgId: A, hostId: "rnh1" },
};
const COLUMNS = Object.keys(ACTORS);

const RES: Record<string, Resource | undefined> = {
  "-": undefined,
  A: { orgId: A },
  "A/p1": { orgId: A, projectId: "p1" },
  B: { orgId: B },
  "B/q1": { orgId: B, projectId: "q1" },
};

type Cell = "ok" | 401 | 403 | 404;
// prettier-ignore
const TABLE: [Action, keyof typeof RES, Cell[]][] = [
  //                                  anon admin ownerA userA ownerB userB tokA1 tokA2 orgTokB oidcA1 agentA
  ["appliance:admin", "-", [401, "ok", 403, 403, 403, 403, 403, 403, 403, 403, 403]],
  ["visible:list", "-", [401, "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"]],
  ["self:read", "-", [401, "ok", "ok", "ok", "ok", "ok", 403, 403, 403, 403, 403]],
  ["self:tokens", "-", [401, "ok", "ok", "ok", "ok", "ok", 403, 403, 403, 403, 403]],
  ["org:read", "A", [401, "ok", "ok", "ok", 404, 404, 404, 404, 404, 404, 403]],
  ["org:update", "A", [401, "ok", "ok", 403, 404, 404, 404, 404, 404, 404, 403]],
  ["member:read", "A", [401, "ok", "ok", "ok", 404, 404, 404, 404, 404, 404, 403]],
  ["member:manage", "A", [401, "ok", "ok", 403, 404, 404, 404, 404, 404, 404, 403]],
  ["project:create", "A", [401, "ok", "ok", 403, 404, 404, 404, 404, 404, 404, 403]],
  ["token:manage-org", "A", [401, "ok", "ok", 403, 404, 404, 404, 404, 404, 404, 403]],
  ["audit:read", "A", [401, "ok", "ok", 403, 404, 404, 404, 404, 404, 404, 403]],
  ["project:read", "A/p1", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403]],
  ["build:run", "A/p1", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403]],
  ["project:update", "A/p1", [401, "ok", "ok", 403, 404, 404, 403, 404, 404, 403, 403]],
  ["project:delete", "A/p1", [401, "ok", "ok", 403, 404, 404, 403, 404, 404, 403, 403]],
  ["cache:reset", "A/p1", [401, "ok", "ok", 403, 404, 404, 403, 404, 404, 403, 403]],
  ["token:manage-project", "A/p1", [401, "ok", "ok", 403, 404, 404, 403, 404, 404, 403, 403]],
  ["trust:read", "A/p1", [401, "ok", "ok", "ok", 404, 404, 403, 404, 404, 403, 403]],
  ["trust:manage", "A/p1", [401, "ok", "ok", 403, 404, 404, 403, 404, 404, 403, 403]],
  ["org:read", "B", [401, "ok", 404, 404, "ok", "ok", 404, 404, "ok", 404, 404]],
  ["member:manage", "B", [401, "ok", 404, 404, "ok", 403, 404, 404, 403, 404, 404]],
  ["token:manage-org", "B", [401, "ok", 404, 404, "ok", 403, 404, 404, 403, 404, 404]],
  ["project:create", "B", [401, "ok", 404, 404, "ok", 403, 404, 404, "ok", 404, 404]],
  ["build:run", "B/q1", [401, "ok", 404, 404, "ok", "ok", 404, 404, "ok", 404, 404]],
  ["trust:manage", "B/q1", [401, "ok", 404, 404, "ok", 403, 404, 404, "ok", 404, 404]],
  ["audit:read", "B", [401, "ok", 404, 404, "ok", 403, 404, 404, 403, 404, 404]],
  ["egress:read", "A", [401, "ok", "ok", "ok", 404, 404, 404, 404, 404, 404, 403]],
  ["egress:manage", "A", [401, "ok", "ok", 403, 404, 404, 404, 404, 404, 404, 403]],
  ["egress:agent", "A", [401, "ok", 403, 403, 404, 404, 404, 404, 404, 404, "ok"]],
  ["egress:read", "B", [401, "ok", 404, 404, "ok", "ok", 404, 404, "ok", 404, 404]],
  ["egress:manage", "B", [401, "ok", 404, 404, "ok", 403, 404, 404, 403, 404, 404]],
  ["egress:agent", "B", [401, "ok", 404, 404, 403, 403, 404, 404, 403, 404, 404]],
  // Which runner hosts the appliance host enforces, and how: the administrator alone (an appliance-wide decision, no resource).
  ["egress:local", "-", [401, "ok", 403, 403, 403, 403, 403, 403, 403, 403, 403]],
  ["quota:manage", "A", [401, "ok", 403, 403, 404, 404, 404, 404, 404, 404, 403]],
  ["quota:manage", "B", [401, "ok", 404, 404, 403, 403, 404, 404, 403, 404, 404]],
];

function outcome(actor: Actor, action: Action, resource: Resource | undefined): Cell {
  try {
    authorize(actor, action, resource);
    return "ok";
  } catch (e) {
    if (e instanceof UnauthenticatedError) return 401;
    if (e instanceof NotFoundError) return 404;
    if (e instanceof ForbiddenError) return 403;
    throw e;
  }
}

describe("authorization policy matrix", () => {
  for (const [action, res, cells] of TABLE) {
    test(`${action} on ${res}`, () => {
      expect(cells).toHaveLength(COLUMNS.length);
      const got: Record<string, Cell | undefined> = Object.fromEntries(
        COLUMNS.map((c) => [c, outcome(ACTORS[c]!, action, RES[res])]),
      );
      const want = Object.fromEntries(COLUMNS.map((c, i) => [c, cells[i]]));
      expect(got).toEqual(want);
      // can() agrees with authorize() everywhere.
      for (const c of COLUMNS) expect(can(ACTORS[c]!, action, RES[res])).toBe(want[c] === "ok");
    });
  }

  test("an organization-scoped action without a resource is never allowed (except for the administrator)", () => {
    for (const c of COLUMNS.filter((c) => c !== "admin" && c !== "anon"))
      expect(can(ACTORS[c]!, "org:read")).toBe(false);
  });
});

// Builds: who reads, drives (connection, health, status, finish) and cancels a build. Build b1
// was started by project token tokA1, b2 by userA; bt1 is b1's build token.
const BUILD_ACTORS: Record<string, Actor> = {
  ...ACTORS,
  bt1: { kind: "build-token", tokenId: "bt1", orgId: A, projectId: "p1", buildId: "b1" },
};
const BUILD_COLUMNS = Object.keys(BUILD_ACTORS);
const BUILD_RES: Record<string, Resource> = {
  "b1(tokA1)": { orgId: A, projectId: "p1", buildId: "b1", startedBy: "token:t1" },
  "b2(userA)": { orgId: A, projectId: "p1", buildId: "b2", startedBy: "user:userA" },
  "q1/b9(ownerB)": { orgId: B, projectId: "q1", buildId: "b9", startedBy: "user:ownerB" },
  "p1 (create)": { orgId: A, projectId: "p1" },
};
// prettier-ignore
const BUILD_TABLE: [Action, string, Cell[]][] = [
  //                                   anon admin ownerA userA ownerB userB tokA1 tokA2 orgTokB oidcA1 agentA bt1
  ["build:read", "b1(tokA1)", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403, "ok"]],
  ["build:drive", "b1(tokA1)", [401, "ok", 403, 403, 404, 404, "ok", 404, 404, 403, 403, "ok"]],
  ["build:cancel", "b1(tokA1)", [401, "ok", "ok", 403, 404, 404, "ok", 404, 404, 403, 403, 403]],
  ["build:read", "b2(userA)", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403, 404]],
  ["build:drive", "b2(userA)", [401, "ok", 403, "ok", 404, 404, 403, 404, 404, 403, 403, 404]],
  ["build:cancel", "b2(userA)", [401, "ok", "ok", "ok", 404, 404, 403, 404, 404, 403, 403, 404]],
  ["build:read", "q1/b9(ownerB)", [401, "ok", 404, 404, "ok", "ok", 404, 404, "ok", 404, 404, 404]],
  ["build:cancel", "q1/b9(ownerB)", [401, "ok", 404, 404, "ok", 403, 404, 404, "ok", 404, 404, 404]],
  ["build:run", "p1 (create)", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403, 404]],
];

describe("authorization policy matrix: builds", () => {
  for (const [action, res, cells] of BUILD_TABLE) {
    test(`${action} on ${res}`, () => {
      expect(cells).toHaveLength(BUILD_COLUMNS.length);
      const got: Record<string, Cell | undefined> = Object.fromEntries(
        BUILD_COLUMNS.map((c) => [c, outcome(BUILD_ACTORS[c]!, action, BUILD_RES[res])]),
      );
      const want = Object.fromEntries(BUILD_COLUMNS.map((c, i) => [c, cells[i]]));
      expect(got).toEqual(want);
    });
  }
});

describe("user tokens", () => {
  test("their user and the administrator manage them; no one else, whatever their roles", () => {
    const got = Object.fromEntries(COLUMNS.map((c) => [c, canManageUserToken(ACTORS[c]!, "userA")]));
    expect(got).toEqual({
      anon: false,
      admin: true,
      ownerA: false,
      userA: true,
      ownerB: false,
      userB: false,
      tokA1: false,
      tokA2: false,
      orgTokB: false,
      oidcA1: false,
      agentA: false,
    });
    expect(canManageUserToken(ACTORS.userA!, null)).toBe(false);
  });
});

// The appliance's registry: who pulls and pushes a project's repository. bt1 is a build token of
// p1; pt1 a pull token of p1. Every refusal of another tenant's repository is 404, like a
// repository that does not exist (the token service then grants nothing).
const REGISTRY_ACTORS: Record<string, Actor> = {
  ...BUILD_ACTORS,
  pt1: { kind: "pull-token", tokenId: "pt1", orgId: A, projectId: "p1" },
};
const REGISTRY_COLUMNS = Object.keys(REGISTRY_ACTORS);
// prettier-ignore
const REGISTRY_TABLE: [Action, string, Cell[]][] = [
  //                                   anon admin ownerA userA ownerB userB tokA1 tokA2 orgTokB oidcA1 agentA bt1  pt1
  ["registry:pull", "A/p1", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403, "ok", "ok"]],
  ["registry:push", "A/p1", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403, "ok", 403]],
  ["registry:pull", "A/p2", [401, "ok", "ok", "ok", 404, 404, 404, "ok", 404, 404, 403, 404, 404]],
  ["registry:push", "A/p2", [401, "ok", "ok", "ok", 404, 404, 404, "ok", 404, 404, 403, 404, 404]],
  ["registry:pull", "B/q1", [401, "ok", 404, 404, "ok", "ok", 404, 404, "ok", 404, 404, 404, 404]],
  ["registry:push", "B/q1", [401, "ok", 404, 404, "ok", "ok", 404, 404, "ok", 404, 404, 404, 404]],
  ["project:read", "A/p1", [401, "ok", "ok", "ok", 404, 404, "ok", 404, 404, "ok", 403, 404, 403]],
];
const REGISTRY_RES: Record<string, Resource> = {
  "A/p1": { orgId: A, projectId: "p1" },
  "A/p2": { orgId: A, projectId: "p2" },
  "B/q1": { orgId: B, projectId: "q1" },
};

describe("authorization policy matrix: registry", () => {
  for (const [action, res, cells] of REGISTRY_TABLE) {
    test(`${action} on ${res}`, () => {
      expect(cells).toHaveLength(REGISTRY_COLUMNS.length);
      const got: Record<string, Cell | undefined> = Object.fromEntries(
        REGISTRY_COLUMNS.map((c) => [c, outcome(REGISTRY_ACTORS[c]!, action, REGISTRY_RES[res])]),
      );
      const want = Object.fromEntries(REGISTRY_COLUMNS.map((c, i) => [c, cells[i]]));
      expect(got).toEqual(want);
    });
  }
});

describe("CI jobs of two issuers with one subject", () => {
  // GitHub.com and an Enterprise Server both say "repo:acme/app:…": they are different jobs.
  const ghes: Actor = { ...ACTORS.oidcA1!, issuer: "https://ghe.example.com/_services/token" } as Actor;
  test("are told apart by their label (audit, started_by)", () => {
    expect(actorLabel(ACTORS.oidcA1!)).toBe("oidc:https://token.actions.githubusercontent.com#repo:acme/app");
    expect(actorLabel(ghes)).toBe("oidc:https://ghe.example.com/_services/token#repo:acme/app");
  });
  test("one cannot drive the build the other started", () => {
    const started: Resource = { orgId: A, projectId: "p1", buildId: "b3", startedBy: actorLabel(ACTORS.oidcA1!) };
    expect(can(ACTORS.oidcA1!, "build:drive", started)).toBe(true);
    expect(can(ghes, "build:drive", started)).toBe(false);
  });
});
