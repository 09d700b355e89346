/**
 * @module test/e2e/authz-matrix
 * Every route the appliance mounts — REST and Connect RPC, as `startAppliance` builds them — driven
 * by every kind of caller, against one table of expected HTTP statuses. A mounted route without a
 * row (or a row for a route no longer mounted) fails the suite, so a new route cannot ship
 * unclassified. Each cell runs inside a savepoint on the appliance's own connection, so one
 * actor's successful write cannot change what the next sees; a refused call must leave every
 * table as it was, and another tenant's resource must answer exactly like a missing one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { METHODS } from "../../src/wire/depot.ts";
import { APPLIANCE_ACTORS, startApplianceWorld, type ApplianceActor, type ApplianceWorld } from "../support/world.ts";

type Ids = ApplianceWorld["ids"];
/** What a cell expects: an HTTP status (for Connect streams, the status of the end-of-stream code). */
type Cells = number[];

interface Row {
  /** The mounted route, `METHOD /pattern`, exactly as the appliance lists it. */
  route: string;
  name: string;
  path: (i: Ids) => string;
  body?: (i: Ids) => unknown;
  /** Connect client or server stream: the body is one enveloped JSON message. */
  stream?: boolean;
  /** Server-Sent Events: the cell is the status the stream starts with (its body is left unread:
   * it may never end); a refusal is an ordinary problem document. */
  events?: boolean;
  /** The id in this call that a missing one replaces: a 404 here must equal a missing id's answer. */
  target?: keyof Ids;
  /** Only these actors are driven (public, rate-limited endpoints: credentials play no part). */
  only?: ApplianceActor[];
  expect: Cells;
}

// Columns, in order: anon admin ownerA userA ownerB projTok orgTok agent build ciJwt oidcTok session expired revoked
const X = 401; // expired and revoked credentials: plain 401, whatever the route
const cells = (s: string): Cells => s.trim().split(/\s+/).map(Number);
/** Any credential: organizations and projects the caller can see. */
const LIST = cells(`401 200 200 200 200 200 200 200 200 200 200 200 ${X} ${X}`);
/** A person only (user tokens and sessions). */
const PERSON = (ok: number) => cells(`401 ${ok} ${ok} ${ok} ${ok} 403 403 403 403 403 403 ${ok} ${X} ${X}`);
/** The administrator only. */
const ADMIN = (ok: number) => cells(`401 ${ok} 403 403 403 403 403 403 403 403 403 403 ${X} ${X}`);
/** Anyone, credentials or not (expired and revoked credentials too: these routes read none). */
const ANYONE = (ok: number) => APPLIANCE_ACTORS.map(() => ok);
const PUBLIC_FEW: ApplianceActor[] = ["anon", "admin", "projTok"];

const rpc = (m: keyof typeof METHODS) => `POST ${METHODS[m].path}`;

// prettier-ignore
const ROWS: Row[] = [
  // Health, metrics (loopback callers), the web UI and the API docs: no credentials.
  { route: "GET /livez", name: "liveness", path: () => "/livez", expect: ANYONE(200) },
  {
    route: "GET /readyz",
    name: "readiness (no Docker engine: a warning, still ready)",
    path: () => "/readyz",
    expect: ANYONE(200),
  },
  { route: "GET /metrics", name: "metrics from loopback", path: () => "/metrics", expect: ANYONE(200) },
  { route: "GET /", name: "status page", path: () => "/", expect: ANYONE(200) },
  { route: "GET /device", name: "device approval page", path: () => "/device", expect: ANYONE(200) },
  { route: "GET /builds/:id", name: "build page", path: (i) => `/builds/${i.b1}`, expect: ANYONE(200) },
  { route: "GET /ui/*", name: "UI asset", path: () => "/ui/app.js", expect: ANYONE(200) },
  { route: "GET /login", name: "sign-in page", path: () => "/login", expect: ANYONE(200) },
  // The UI's shell for a browser (Accept: text/html); anything else asking is told "not found".
  {
    route: "GET /*",
    name: "any other address, not asking for HTML",
    path: () => "/orgs/x/projects",
    expect: ANYONE(404),
  },
  { route: "GET /api/v1/docs", name: "API docs page", path: () => "/api/v1/docs", expect: ANYONE(200) },
  {
    route: "GET /api/v1/docs/assets/:name",
    name: "API docs asset",
    path: () => "/api/v1/docs/assets/swagger-ui.css",
    expect: ANYONE(200),
  },
  {
    route: "GET /api/v1/openapi.json",
    name: "OpenAPI document",
    path: () => "/api/v1/openapi.json",
    expect: ANYONE(200),
  },

  { route: "GET /api/v1/me", name: "who am I", path: () => "/api/v1/me", expect: PERSON(200) },
  { route: "GET /api/v1/orgs", name: "list organizations", path: () => "/api/v1/orgs", expect: LIST },
  {
    route: "POST /api/v1/orgs",
    name: "create organization",
    path: () => "/api/v1/orgs",
    body: () => ({ slug: "new-org", name: "N", owner: "ownerA" }),
    expect: ADMIN(201),
  },
  {
    route: "GET /api/v1/orgs/:org",
    name: "read org A",
    path: (i) => `/api/v1/orgs/${i.A}`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "PATCH /api/v1/orgs/:org",
    name: "rename org A",
    path: (i) => `/api/v1/orgs/${i.A}`,
    body: () => ({ name: "A2" }),
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/builder-runtime",
    name: "builder runtime of A",
    path: (i) => `/api/v1/orgs/${i.A}/builder-runtime`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/orgs/:org/builder-runtime",
    name: "set builder runtime of A",
    path: (i) => `/api/v1/orgs/${i.A}/builder-runtime`,
    body: () => ({ oci_runtime: "runsc" }),
    target: "A",
    expect: cells(`401 200 403 403 404 404 403 403 404 404 404 403 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/quotas",
    name: "quotas of A",
    path: (i) => `/api/v1/orgs/${i.A}/quotas`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/orgs/:org/quotas",
    name: "set quotas of A",
    path: (i) => `/api/v1/orgs/${i.A}/quotas`,
    body: () => ({ max_projects: 5 }),
    target: "A",
    expect: cells(`401 200 403 403 404 404 403 403 404 404 404 403 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/members",
    name: "members of A",
    path: (i) => `/api/v1/orgs/${i.A}/members`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/orgs/:org/members",
    name: "add member to A",
    path: (i) => `/api/v1/orgs/${i.A}/members`,
    body: () => ({ user: "userB", role: "user" }),
    target: "A",
    expect: cells(`401 201 201 403 404 404 403 403 404 404 404 201 ${X} ${X}`),
  },
  {
    route: "PATCH /api/v1/orgs/:org/members/:user",
    name: "promote userA",
    path: (i) => `/api/v1/orgs/${i.A}/members/userA`,
    body: () => ({ role: "owner" }),
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/orgs/:org/members/:user",
    name: "remove userA",
    path: (i) => `/api/v1/orgs/${i.A}/members/userA`,
    target: "A",
    expect: cells(`401 204 204 403 404 404 403 403 404 404 404 204 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/audit",
    name: "audit log of A",
    path: (i) => `/api/v1/orgs/${i.A}/audit`,
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  { route: "GET /api/v1/audit", name: "appliance audit log", path: () => "/api/v1/audit", expect: ADMIN(200) },
  {
    route: "POST /api/v1/users",
    name: "create user",
    path: () => "/api/v1/users",
    body: () => ({ username: "carol" }),
    expect: ADMIN(201),
  },
  { route: "GET /api/v1/users", name: "every user", path: () => "/api/v1/users", expect: ADMIN(200) },
  {
    route: "PATCH /api/v1/users/:user",
    name: "make a user administrator",
    path: () => "/api/v1/users/userA",
    body: () => ({ is_admin: true }),
    expect: ADMIN(200),
  },
  {
    route: "POST /api/v1/users/:user/token",
    name: "reset a user's token",
    path: () => "/api/v1/users/userA/token",
    expect: ADMIN(201),
  },
  {
    route: "GET /api/v1/admin/builders",
    name: "builder images and every builder",
    path: () => "/api/v1/admin/builders",
    expect: ADMIN(200),
  },
  {
    route: "GET /api/v1/admin/ca",
    name: "certificate authorities",
    path: () => "/api/v1/admin/ca",
    expect: ADMIN(200),
  },

  { route: "GET /api/v1/projects", name: "list visible projects", path: () => "/api/v1/projects", expect: LIST },
  {
    route: "GET /api/v1/orgs/:org/projects",
    name: "projects of A",
    path: (i) => `/api/v1/orgs/${i.A}/projects`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/orgs/:org/projects",
    name: "create project in A",
    path: (i) => `/api/v1/orgs/${i.A}/projects`,
    body: () => ({ name: "p9" }),
    target: "A",
    expect: cells(`401 201 201 403 404 404 201 403 404 404 404 201 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id",
    name: "read project p1",
    path: (i) => `/api/v1/projects/${i.p1}`,
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "PATCH /api/v1/projects/:id",
    name: "update project p1",
    path: (i) => `/api/v1/projects/${i.p1}`,
    body: () => ({ builder_cpus: 4 }),
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/projects/:id",
    name: "delete project p1",
    path: (i) => `/api/v1/projects/${i.p1}`,
    target: "p1",
    expect: cells(`401 204 204 403 404 403 204 403 404 403 403 204 ${X} ${X}`),
  },

  {
    route: "GET /api/v1/builds/:id",
    name: "read build b1",
    path: (i) => `/api/v1/builds/${i.b1}`,
    target: "b1",
    expect: cells(`401 200 200 200 404 200 200 403 200 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/builds/:id/steps",
    name: "steps of b1",
    path: (i) => `/api/v1/builds/${i.b1}/steps`,
    target: "b1",
    expect: cells(`401 200 200 200 404 200 200 403 200 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/builds/:id/logs",
    name: "log of b1",
    path: (i) => `/api/v1/builds/${i.b1}/logs`,
    target: "b1",
    expect: cells(`401 200 200 200 404 200 200 403 200 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/builds/:id/events",
    name: "follow b1 (Server-Sent Events)",
    path: (i) => `/api/v1/builds/${i.b1}/events`,
    target: "b1",
    events: true,
    expect: cells(`401 200 200 200 404 200 200 403 200 200 200 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/builds/:id/cancel",
    name: "cancel b1 (started by projTok)",
    path: (i) => `/api/v1/builds/${i.b1}/cancel`,
    target: "b1",
    expect: cells(`401 202 202 403 404 202 202 403 403 403 403 202 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id/builds",
    name: "builds of p1",
    path: (i) => `/api/v1/projects/${i.p1}/builds`,
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id/builds/stats",
    name: "build charts of p1",
    path: (i) => `/api/v1/projects/${i.p1}/builds/stats`,
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    // Project-scoped credentials see their own projects' builds in their organization's list.
    route: "GET /api/v1/orgs/:org/builds",
    name: "builds of A",
    path: (i) => `/api/v1/orgs/${i.A}/builds`,
    target: "A",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/builds/stats",
    name: "build charts of A",
    path: (i) => `/api/v1/orgs/${i.A}/builds/stats`,
    target: "A",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id/builds/events",
    name: "follow the builds of p1 (Server-Sent Events)",
    path: (i) => `/api/v1/projects/${i.p1}/builds/events`,
    target: "p1",
    events: true,
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/builds/events",
    name: "follow the builds of org A (Server-Sent Events)",
    path: (i) => `/api/v1/orgs/${i.A}/builds/events`,
    target: "A",
    events: true,
    // As the organization's list: a project credential follows its own project's builds.
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id/builders",
    name: "builders of p1",
    path: (i) => `/api/v1/projects/${i.p1}/builders`,
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id/cache",
    name: "cache of p1",
    path: (i) => `/api/v1/projects/${i.p1}/cache`,
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/projects/:id/cache/reset",
    name: "reset the cache of p1",
    path: (i) => `/api/v1/projects/${i.p1}/cache/reset`,
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },

  {
    route: "GET /api/v1/projects/:id/registry",
    name: "registry usage of p1",
    path: (i) => `/api/v1/projects/${i.p1}/registry`,
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/projects/:id/registry",
    name: "registry retention of p1",
    path: (i) => `/api/v1/projects/${i.p1}/registry`,
    body: () => ({ retention_days: 3 }),
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/registry/gc",
    name: "registry GC (its process absent: 503)",
    path: () => "/api/v1/registry/gc",
    expect: ADMIN(503),
  },

  { route: "GET /api/v1/tokens", name: "list own tokens", path: () => "/api/v1/tokens", expect: PERSON(200) },
  {
    route: "GET /api/v1/orgs/:org/tokens",
    name: "tokens of A",
    path: (i) => `/api/v1/orgs/${i.A}/tokens`,
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id/tokens",
    name: "project tokens of p1",
    path: (i) => `/api/v1/projects/${i.p1}/tokens`,
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/tokens",
    name: "create user token",
    path: () => "/api/v1/tokens",
    body: () => ({ kind: "user", name: "n" }),
    expect: PERSON(201),
  },
  {
    route: "POST /api/v1/tokens",
    name: "create org token for A",
    path: () => "/api/v1/tokens",
    body: (i) => ({ kind: "org", name: "n", org: i.A }),
    target: "A",
    expect: cells(`401 201 201 403 404 404 403 403 404 404 404 201 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/tokens",
    name: "create project token for p1",
    path: () => "/api/v1/tokens",
    body: (i) => ({ kind: "project", name: "n", project: i.p1 }),
    target: "p1",
    expect: cells(`401 201 201 403 404 403 201 403 404 403 403 201 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/tokens/:id",
    name: "revoke p2's project token",
    path: (i) => `/api/v1/tokens/${i.tokA2}`,
    target: "tokA2",
    expect: cells(`401 200 200 403 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/tokens/:id",
    name: "revoke B's org token",
    path: (i) => `/api/v1/tokens/${i.orgTokB}`,
    target: "orgTokB",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/tokens/:id",
    name: "revoke ownerA's user token",
    path: (i) => `/api/v1/tokens/${i.ownerAToken}`,
    target: "ownerAToken",
    expect: cells(`401 200 200 404 404 404 404 404 404 404 404 200 ${X} ${X}`),
  },

  {
    route: "GET /api/v1/projects/:id/trust",
    name: "trust of p1",
    path: (i) => `/api/v1/projects/${i.p1}/trust`,
    target: "p1",
    expect: cells(`401 200 200 200 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/projects/:id/trust",
    name: "trust a repository on p1",
    path: (i) => `/api/v1/projects/${i.p1}/trust`,
    body: () => ({
      provider: "github",
      owner: "acme",
      repository: "acme/other",
      audiences: ["https://slipway.example.com"],
    }),
    target: "p1",
    expect: cells(`401 201 201 403 404 403 201 403 404 403 403 201 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/trust/:id",
    name: "remove p1's trust",
    path: (i) => `/api/v1/trust/${i.trustA}`,
    target: "trustA",
    expect: cells(`401 204 204 403 404 403 204 403 404 403 403 204 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/oidc/exchange",
    name: "exchange a CI JWT (no credentials needed)",
    path: () => "/api/v1/oidc/exchange",
    body: (i) => ({ token: i.ciJwt }),
    expect: ANYONE(200),
  },

  {
    route: "GET /api/v1/orgs/:org/egress",
    name: "egress policy of A",
    path: (i) => `/api/v1/orgs/${i.A}/egress`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/orgs/:org/egress/mode",
    name: "egress mode of A",
    path: (i) => `/api/v1/orgs/${i.A}/egress/mode`,
    body: () => ({ mode: "monitor" }),
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/orgs/:org/egress/default",
    name: "egress default of A",
    path: (i) => `/api/v1/orgs/${i.A}/egress/default`,
    body: () => ({ action: "deny" }),
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/orgs/:org/egress/rules",
    name: "add an egress rule to A",
    path: (i) => `/api/v1/orgs/${i.A}/egress/rules`,
    body: () => ({ action: "allow", target: "203.0.113.9" }),
    target: "A",
    expect: cells(`401 201 201 403 404 404 403 403 404 404 404 201 ${X} ${X}`),
  },
  {
    route: "PATCH /api/v1/orgs/:org/egress/rules/:ref",
    name: "change A's egress rule",
    path: (i) => `/api/v1/orgs/${i.A}/egress/rules/${i.ruleA}`,
    body: () => ({ comment: "changed" }),
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/orgs/:org/egress/rules/:ref",
    name: "remove A's egress rule",
    path: (i) => `/api/v1/orgs/${i.A}/egress/rules/${i.ruleA}`,
    target: "A",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/egress/hosts",
    name: "runner hosts of A",
    path: (i) => `/api/v1/orgs/${i.A}/egress/hosts`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/orgs/:org/egress/hosts",
    name: "register a runner host in A",
    path: (i) => `/api/v1/orgs/${i.A}/egress/hosts`,
    body: () => ({ name: "ci-a2", scopes: ["host"] }),
    target: "A",
    expect: cells(`401 201 201 403 404 404 403 403 404 404 404 201 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/orgs/:org/egress/hosts/:id/scopes",
    name: "rescope hostA",
    path: (i) => `/api/v1/orgs/${i.A}/egress/hosts/${i.hostA}/scopes`,
    body: () => ({ scopes: ["host"] }),
    target: "hostA",
    expect: cells(`401 200 200 403 404 404 403 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/orgs/:org/egress/hosts/:id",
    name: "remove hostA",
    path: (i) => `/api/v1/orgs/${i.A}/egress/hosts/${i.hostA}`,
    target: "hostA",
    expect: cells(`401 204 204 403 404 404 403 403 404 404 404 204 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/egress/events",
    name: "egress events of A",
    path: (i) => `/api/v1/orgs/${i.A}/egress/events`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/egress/events/destinations",
    name: "egress events of A by destination",
    path: (i) => `/api/v1/orgs/${i.A}/egress/events/destinations`,
    target: "A",
    expect: cells(`401 200 200 200 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  // Which runner hosts serve enforces on the appliance host itself: the administrator's decision alone.
  {
    route: "GET /api/v1/egress/local-hosts",
    name: "local runner hosts",
    path: () => "/api/v1/egress/local-hosts",
    expect: ADMIN(200),
  },
  {
    route: "PUT /api/v1/egress/local-hosts/:id",
    name: "designate hostA local",
    path: (i) => `/api/v1/egress/local-hosts/${i.hostA}`,
    body: () => ({ scopes: ["docker:ci"] }),
    expect: ADMIN(200),
  },
  {
    route: "DELETE /api/v1/egress/local-hosts/:id",
    name: "end hostA's designation (none: 404)",
    path: (i) => `/api/v1/egress/local-hosts/${i.hostA}`,
    expect: ADMIN(404),
  },
  {
    route: "GET /api/v1/egress/agent/policy",
    name: "agent: its policy",
    path: () => "/api/v1/egress/agent/policy",
    expect: cells(`401 403 403 403 403 403 403 200 403 403 403 403 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/egress/agent/status",
    name: "agent: apply status",
    path: () => "/api/v1/egress/agent/status",
    body: () => ({ etag: "e1", ok: true }),
    expect: cells(`401 403 403 403 403 403 403 204 403 403 403 403 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/egress/agent/events",
    name: "agent: events",
    path: () => "/api/v1/egress/agent/events",
    body: () => ({ events: [] }),
    expect: cells(`401 403 403 403 403 403 403 200 403 403 403 403 ${X} ${X}`),
  },

  // Log-in is rate-limited per address and user: a few callers show it ignores credentials.
  {
    route: "POST /api/v1/auth/login",
    name: "log in with a password",
    path: () => "/api/v1/auth/login",
    body: () => ({ username: "ownerA", password: "a long passphrase for the matrix" }),
    only: PUBLIC_FEW,
    expect: ANYONE(200),
  },
  {
    route: "POST /api/v1/auth/logout",
    name: "log out (a session only)",
    path: () => "/api/v1/auth/logout",
    expect: cells(`401 401 401 401 401 403 403 403 403 403 403 204 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/auth/sessions",
    name: "own sessions",
    path: () => "/api/v1/auth/sessions",
    expect: PERSON(200),
  },
  {
    route: "DELETE /api/v1/auth/sessions/:id",
    name: "end ownerA's session",
    path: (i) => `/api/v1/auth/sessions/${i.sessionA}`,
    target: "sessionA",
    expect: cells(`401 404 204 404 404 403 403 403 403 403 403 204 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/me/password",
    name: "change own password (a person without one sets it)",
    path: () => "/api/v1/me/password",
    body: () => ({
      current_password: "a long passphrase for the matrix",
      new_password: "another long passphrase here",
    }),
    expect: PERSON(204),
  },
  {
    route: "POST /api/v1/auth/device",
    name: "start a device login",
    path: () => "/api/v1/auth/device",
    body: () => ({}),
    only: PUBLIC_FEW,
    expect: ANYONE(200),
  },
  {
    route: "POST /api/v1/auth/device/token",
    name: "poll a pending device login",
    path: () => "/api/v1/auth/device/token",
    body: (i) => ({ device_code: i.pendingDeviceCode }),
    expect: ANYONE(202),
  },
  {
    route: "GET /api/v1/auth/device/:code",
    name: "describe a device login",
    path: (i) => `/api/v1/auth/device/${i.pendingUserCode}`,
    expect: PERSON(200),
  },
  {
    route: "POST /api/v1/auth/device/approve",
    name: "approve a device login",
    path: () => "/api/v1/auth/device/approve",
    body: (i) => ({ user_code: i.pendingUserCode }),
    expect: PERSON(204),
  },
  {
    route: "POST /api/v1/auth/device/deny",
    name: "deny a device login",
    path: () => "/api/v1/auth/device/deny",
    body: (i) => ({ user_code: i.pendingUserCode }),
    expect: PERSON(204),
  },

  // Connect RPC (the depot CLI's API), JSON codec. Statuses are Connect's HTTP mapping.
  {
    route: rpc("createBuild"),
    name: "CreateBuild on p1",
    path: () => METHODS.createBuild.path,
    body: (i) => ({ projectId: i.p1 }),
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: rpc("getBuild"),
    name: "GetBuild b1",
    path: () => METHODS.getBuild.path,
    body: (i) => ({ buildId: i.b1 }),
    target: "b1",
    expect: cells(`401 200 200 200 404 200 200 403 200 200 200 200 ${X} ${X}`),
  },
  {
    route: rpc("finishBuild"),
    name: "FinishBuild b1",
    path: () => METHODS.finishBuild.path,
    body: (i) => ({ buildId: i.b1, success: {} }),
    target: "b1",
    expect: cells(`401 200 403 403 404 200 403 403 200 403 403 403 ${X} ${X}`),
  },
  {
    route: rpc("getBuildKitConnection"),
    name: "GetBuildKitConnection b1 (no Docker engine: 503)",
    path: () => METHODS.getBuildKitConnection.path,
    body: (i) => ({ buildId: i.b1, platform: "BUILDER_PLATFORM_AMD64" }),
    target: "b1",
    expect: cells(`401 503 403 403 404 503 403 403 503 403 403 403 ${X} ${X}`),
  },
  {
    route: rpc("reportBuildHealth"),
    name: "ReportBuildHealth b1",
    path: () => METHODS.reportBuildHealth.path,
    body: (i) => ({ buildId: i.b1 }),
    target: "b1",
    expect: cells(`401 200 403 403 404 200 403 403 200 403 403 403 ${X} ${X}`),
  },
  {
    route: rpc("reportTimings"),
    name: "ReportTimings b1",
    path: () => METHODS.reportTimings.path,
    body: (i) => ({ buildId: i.b1 }),
    target: "b1",
    expect: cells(`401 200 403 403 404 200 403 403 200 403 403 403 ${X} ${X}`),
  },
  {
    route: rpc("reportStatus"),
    name: "ReportStatus b1",
    path: () => METHODS.reportStatus.path,
    body: (i) => ({ buildId: i.b1 }),
    target: "b1",
    expect: cells(`401 200 403 403 404 200 403 403 200 403 403 403 ${X} ${X}`),
  },
  {
    route: rpc("reportStatusStream"),
    name: "ReportStatusStream b1",
    path: () => METHODS.reportStatusStream.path,
    body: (i) => ({ buildId: i.b1 }),
    stream: true,
    target: "b1",
    expect: cells(`401 200 403 403 404 200 403 403 200 403 403 403 ${X} ${X}`),
  },
  {
    route: rpc("reportBuildContext"),
    name: "ReportBuildContext b1",
    path: () => METHODS.reportBuildContext.path,
    body: (i) => ({ buildId: i.b1 }),
    target: "b1",
    expect: cells(`401 200 200 200 404 200 200 403 200 200 200 200 ${X} ${X}`),
  },
  {
    route: rpc("listBuilds"),
    name: "ListBuilds of p1",
    path: () => METHODS.listBuilds.path,
    body: (i) => ({ projectId: i.p1 }),
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: rpc("getPullInfo"),
    name: "GetPullInfo b1 (no registry process: 400)",
    path: () => METHODS.getPullInfo.path,
    body: (i) => ({ buildId: i.b1 }),
    target: "b1",
    expect: cells(`401 400 400 400 404 400 400 403 400 400 400 400 ${X} ${X}`),
  },
  {
    route: rpc("getPullToken"),
    name: "GetPullToken p1 (no registry process: 400)",
    path: () => METHODS.getPullToken.path,
    body: (i) => ({ projectId: i.p1 }),
    target: "p1",
    expect: cells(`401 400 400 400 404 400 400 403 400 400 400 400 ${X} ${X}`),
  },
  {
    route: rpc("startPush"),
    name: "StartPush (not offered)",
    path: () => METHODS.startPush.path,
    body: () => ({}),
    expect: cells(`401 501 501 501 501 501 501 501 501 501 501 501 ${X} ${X}`),
  },
  {
    route: rpc("finishPush"),
    name: "FinishPush (not offered)",
    path: () => METHODS.finishPush.path,
    body: () => ({}),
    expect: cells(`401 501 501 501 501 501 501 501 501 501 501 501 ${X} ${X}`),
  },
  {
    route: rpc("listProjects"),
    name: "ListProjects (cli)",
    path: () => METHODS.listProjects.path,
    body: () => ({}),
    expect: LIST,
  },
  {
    route: rpc("resetProjectCache"),
    name: "ResetProjectCache p1",
    path: () => METHODS.resetProjectCache.path,
    body: (i) => ({ projectId: i.p1 }),
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  {
    route: rpc("startLogin"),
    name: "StartLogin",
    path: () => METHODS.startLogin.path,
    body: () => ({}),
    only: PUBLIC_FEW,
    expect: ANYONE(200),
  },
  {
    route: rpc("finishLogin"),
    name: "FinishLogin (approved)",
    path: () => METHODS.finishLogin.path,
    body: (i) => ({ id: i.approvedDeviceCode }),
    stream: true,
    expect: ANYONE(200),
  },
  {
    route: rpc("listOrganizations"),
    name: "ListOrganizations",
    path: () => METHODS.listOrganizations.path,
    body: () => ({}),
    expect: LIST,
  },
  {
    route: rpc("coreListProjects"),
    name: "ListProjects (core)",
    path: () => METHODS.coreListProjects.path,
    body: () => ({}),
    expect: LIST,
  },
  {
    route: rpc("getProject"),
    name: "GetProject p1",
    path: () => METHODS.getProject.path,
    body: (i) => ({ projectId: i.p1 }),
    target: "p1",
    expect: cells(`401 200 200 200 404 200 200 403 404 200 200 200 ${X} ${X}`),
  },
  {
    route: rpc("createProject"),
    name: "CreateProject in A",
    path: () => METHODS.createProject.path,
    body: (i) => ({ organizationId: i.A, name: "p9" }),
    target: "A",
    expect: cells(`401 200 200 403 404 404 200 403 404 404 404 200 ${X} ${X}`),
  },
  {
    route: rpc("updateProject"),
    name: "UpdateProject p1",
    path: () => METHODS.updateProject.path,
    body: (i) => ({ projectId: i.p1, name: "p1b" }),
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  {
    route: rpc("deleteProject"),
    name: "DeleteProject p1",
    path: () => METHODS.deleteProject.path,
    body: (i) => ({ projectId: i.p1 }),
    target: "p1",
    expect: cells(`401 200 200 403 404 403 200 403 404 403 403 200 ${X} ${X}`),
  },
  // Organization B's resources: every credential of A (tokens, agent, CI) meets them as missing.
  {
    route: "GET /api/v1/orgs/:org",
    name: "read org B",
    path: (i) => `/api/v1/orgs/${i.B}`,
    target: "B",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "PATCH /api/v1/orgs/:org",
    name: "rename org B",
    path: (i) => `/api/v1/orgs/${i.B}`,
    body: () => ({ name: "B2" }),
    target: "B",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/members",
    name: "members of B",
    path: (i) => `/api/v1/orgs/${i.B}/members`,
    target: "B",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/orgs/:org/members",
    name: "add member to B",
    path: (i) => `/api/v1/orgs/${i.B}/members`,
    body: () => ({ user: "userA", role: "user" }),
    target: "B",
    expect: cells(`401 201 404 404 201 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/orgs/:org/projects",
    name: "create project in B",
    path: (i) => `/api/v1/orgs/${i.B}/projects`,
    body: () => ({ name: "q9" }),
    target: "B",
    expect: cells(`401 201 404 404 201 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/projects/:id",
    name: "read project q1 (B)",
    path: (i) => `/api/v1/projects/${i.q1}`,
    target: "q1",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "DELETE /api/v1/projects/:id",
    name: "delete project q1 (B)",
    path: (i) => `/api/v1/projects/${i.q1}`,
    target: "q1",
    expect: cells(`401 204 404 404 204 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "GET /api/v1/orgs/:org/egress",
    name: "egress policy of B",
    path: (i) => `/api/v1/orgs/${i.B}/egress`,
    target: "B",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "PUT /api/v1/orgs/:org/egress/hosts/:id/scopes",
    name: "rescope hostB",
    path: (i) => `/api/v1/orgs/${i.B}/egress/hosts/${i.hostB}/scopes`,
    body: () => ({ scopes: ["docker:ci"] }),
    target: "hostB",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "POST /api/v1/tokens",
    name: "create org token for B",
    path: () => "/api/v1/tokens",
    body: (i) => ({ kind: "org", name: "n", org: i.B }),
    target: "B",
    expect: cells(`401 201 404 404 201 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: rpc("getProject"),
    name: "GetProject q1 (B)",
    path: () => METHODS.getProject.path,
    body: (i) => ({ projectId: i.q1 }),
    target: "q1",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: rpc("createBuild"),
    name: "CreateBuild on q1 (B)",
    path: () => METHODS.createBuild.path,
    body: (i) => ({ projectId: i.q1 }),
    target: "q1",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: rpc("createProject"),
    name: "CreateProject in B",
    path: () => METHODS.createProject.path,
    body: (i) => ({ organizationId: i.B, name: "q9" }),
    target: "B",
    expect: cells(`401 200 404 404 200 404 404 404 404 404 404 404 ${X} ${X}`),
  },
  {
    route: "POST /depot.*",
    name: "a depot RPC not offered",
    path: () => "/depot.ci.v1.CIService/Run",
    body: () => ({}),
    expect: ANYONE(501),
  },
];

/** Connect's HTTP mapping of an end-of-stream error code (streams answer 200 with the code inside). */
const STREAM_STATUS: Record<string, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  failed_precondition: 400,
  resource_exhausted: 429,
  unavailable: 503,
  internal: 500,
  unimplemented: 501,
};

function envelope(message: unknown): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(message));
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** The end-of-stream frame's JSON of a Connect stream response. */
function endOfStream(bytes: Uint8Array): { error?: { code: string; message: string } } | null {
  let at = 0;
  while (at + 5 <= bytes.length) {
    const len = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    if (bytes[at]! & 0x02) return JSON.parse(new TextDecoder().decode(bytes.slice(at + 5, at + 5 + len)));
    at += 5 + len;
  }
  return null;
}

interface Answer {
  status: number;
  contentType: string;
  /** The error body as compared between a foreign and a missing resource (ids masked). */
  shape: unknown;
  text: string;
}

const ID = /\b[a-z]{3,4}_[a-z2-7]{20}\b/g;

async function send(w: ApplianceWorld, actor: ApplianceActor, row: Row, path: string, body: unknown): Promise<Answer> {
  if (row.stream) {
    const r = await w.call(actor, "POST", path, envelope(body ?? {}), "application/connect+json");
    const bytes = new Uint8Array(await r.arrayBuffer());
    const end = endOfStream(bytes);
    const code = end?.error?.code;
    return {
      status: r.status === 200 ? (code ? (STREAM_STATUS[code] ?? 500) : 200) : r.status,
      contentType: r.headers.get("content-type") ?? "",
      shape: end,
      text: new TextDecoder().decode(bytes),
    };
  }
  const r = await w.call(actor, row.route.split(" ")[0]!, path, body === undefined ? undefined : JSON.stringify(body));
  if (row.events && r.ok) {
    const contentType = r.headers.get("content-type") ?? "";
    await r.body?.cancel(); // a live stream: its start is the answer
    return { status: contentType.startsWith("text/event-stream") ? r.status : 500, contentType, shape: null, text: "" };
  }
  const text = await r.text();
  let shape: unknown = text;
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    shape =
      "code" in j && !("type" in j)
        ? { code: j.code, message: j.message }
        : { type: j.type, title: j.title, status: j.status, detail: j.detail, errors: j.errors };
  } catch {
    // not JSON: compared as text
  }
  return {
    status: r.status,
    contentType: r.headers.get("content-type") ?? "",
    shape: JSON.parse(JSON.stringify(shape).replace(ID, "<id>")),
    text,
  };
}

/** A nonexistent id of the same kind as `id`. */
const missingLike = (id: string) => id.replace(/_[a-z2-7]{20}$/, "_aaaaaaaaaaaaaaaaaaaa");

let w: ApplianceWorld;
beforeAll(async () => {
  w = await startApplianceWorld();
}, 120_000);
afterAll(async () => await w?.close());

const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;

describe("authorization matrix over every mounted route", () => {
  test("every mounted route and every Connect RPC has a row, and every row a mounted route", () => {
    const mounted = new Set(w.routes.map(key));
    const covered = new Set(ROWS.map((r) => r.route));
    expect([...mounted].filter((r) => !covered.has(r)).sort()).toEqual([]);
    expect([...covered].filter((r) => !mounted.has(r)).sort()).toEqual([]);
    // The RPCs the depot CLI calls are mounted routes too; this names any that is not.
    expect(
      Object.values(METHODS)
        .map((m) => `POST ${m.path}`)
        .filter((r) => !covered.has(r)),
    ).toEqual([]);
  });

  for (const row of ROWS) {
    test(`${row.route} — ${row.name}`, async () => {
      expect(row.expect).toHaveLength(APPLIANCE_ACTORS.length);
      const got: Partial<Record<ApplianceActor, number>> = {};
      const want: Partial<Record<ApplianceActor, number>> = {};
      const problems: string[] = [];
      for (const [n, actor] of APPLIANCE_ACTORS.entries()) {
        if (row.only && !row.only.includes(actor)) continue;
        want[actor] = row.expect[n]!;
        await w.isolated(async () => {
          const before = w.digest();
          const path = row.path(w.ids);
          const body = row.body?.(w.ids);
          const a = await send(w, actor, row, path, body);
          got[actor] = a.status;
          if (/\n\s+at \S+ \(|\.ts:\d+:\d+/.test(a.text))
            problems.push(`${actor}: a stack trace or source location in the answer`);
          if (a.status >= 400) {
            if (w.digest() !== before) problems.push(`${actor}: refused with ${a.status}, yet a table changed`);
            const connect = row.route.startsWith("POST /depot.");
            if (!row.stream && !a.contentType.startsWith(connect ? "application/json" : "application/problem+json"))
              problems.push(`${actor}: ${a.status} as ${a.contentType}`);
          }
          // Another tenant's resource answers exactly like a missing one.
          if (a.status === 404 && row.target) {
            const real = String(w.ids[row.target]);
            const gone = missingLike(real);
            const m = await send(
              w,
              actor,
              row,
              path.replaceAll(real, gone),
              JSON.parse(JSON.stringify(body ?? null)?.replaceAll(real, gone) ?? "null") ?? undefined,
            );
            if (m.status !== 404 || JSON.stringify(m.shape) !== JSON.stringify(a.shape))
              problems.push(
                `${actor}: foreign answered ${a.status} ${JSON.stringify(a.shape)}, missing ${m.status} ${JSON.stringify(m.shape)}`,
              );
          }
        });
      }
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        // The row as observed, ready to compare with the table above.
        console.log(`${row.route} — ${row.name}: observed ${APPLIANCE_ACTORS.map((a) => got[a] ?? "-").join(" ")}`);
      }
      expect(got).toEqual(want);
      expect(problems).toEqual([]);
    });
  }

  test("lists show only what the caller may see", async () => {
    const names = async (actor: ApplianceActor, path: string) =>
      ((await (await w.call(actor, "GET", path)).json()) as { name: string }[]).map((p) => p.name).sort();
    expect(await names("projTok", "/api/v1/projects")).toEqual(["p1"]);
    expect(await names("ciJwt", "/api/v1/projects")).toEqual(["p1"]);
    expect(await names("orgTok", "/api/v1/projects")).toEqual(["p1", "p2"]);
    expect(await names("ownerB", "/api/v1/projects")).toEqual(["q1"]);
    expect(await names("build", "/api/v1/projects")).toEqual([]);
    expect(await names("agent", "/api/v1/orgs")).toEqual([]);
    expect(await names("userA", "/api/v1/orgs")).toEqual(["A"]);
  });

  test("failed authentications are audited with the caller's address and no credential", async () => {
    await w.call("revoked", "GET", "/api/v1/me");
    const entry = w.db.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1").get() as Record<string, unknown>;
    expect(entry).toMatchObject({ action: "auth.failure", outcome: "failure", ip: "127.0.0.1", actor: "anonymous" });
    expect(JSON.stringify(entry)).not.toContain(w.secrets.revoked!);
  });

  test("the audit log cannot be rewritten", () => {
    expect(() => w.db.run("UPDATE audit_log SET action = 'x'")).toThrow("append-only");
    expect(() => w.db.run("DELETE FROM audit_log")).toThrow("append-only");
  });
});
