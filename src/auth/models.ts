/**
 * @module auth/models
 * The identity API's request and response shapes (who am I, login and sessions, device login,
 * API tokens, OIDC trust and its exchange), defined once: the routes validate with them, the
 * OpenAPI document describes them, and the CLI takes its types from them. Imports no service.
 */
import { t, type Static } from "elysia";

export const Me = t.Object({
  id: t.String(),
  username: t.String(),
  is_admin: t.Boolean(),
  token_id: t.Nullable(t.String({ description: "the token this request used (null for a web session)" })),
  memberships: t.Record(t.String(), t.Union([t.Literal("owner"), t.Literal("user")]), {
    description: "the caller's role in each organization it belongs to, by organization id",
  }),
});
export type MeView = Static<typeof Me>;

/** POST /auth/login */
export const Login = t.Object(
  { username: t.String({ minLength: 1, maxLength: 64 }), password: t.String({ minLength: 1, maxLength: 1024 }) },
  { additionalProperties: false },
);
export const Session = t.Object({
  id: t.String(),
  user_id: t.String(),
  created_at: t.String(),
  expires_at: t.String(),
  last_seen_at: t.String(),
  ip: t.Nullable(t.String()),
  user_agent: t.Nullable(t.String()),
  /** In the list of sessions: the one the request came with (its cookie). */
  current: t.Optional(t.Boolean()),
});
export type SessionView = Static<typeof Session>;
/** PUT /me/password */
export const PasswordChange = t.Object(
  {
    current_password: t.Optional(t.String({ maxLength: 1024 })),
    new_password: t.String({ minLength: 1, maxLength: 1024 }),
  },
  { additionalProperties: false },
);

const CLIENT_NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$";
/** POST /auth/device. The client's name for itself is shown to the approver as unverified; no
 * control or direction-override characters that could make it pass for something else. */
export const DeviceStart = t.Object(
  { client_name: t.Optional(t.String({ maxLength: 100, pattern: CLIENT_NAME_PATTERN })) },
  { additionalProperties: false },
);
export const DeviceStarted = t.Object({
  device_code: t.String(),
  user_code: t.String(),
  verification_uri: t.String(),
  expires_in: t.Number(),
  interval: t.Number(),
});
export type DeviceStartedView = Static<typeof DeviceStarted>;
/** POST /auth/device/token */
export const DevicePoll = t.Object(
  { device_code: t.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
/** What a poll answers: pending (202), or approved with the token (200). */
export type DevicePollView = { status: "pending" } | { status: "approved"; token: string; token_id: string };
const UserCode = t.String({ minLength: 8, maxLength: 16, description: "the code the CLI shows, e.g. BCDF-GHJK" });
/** POST /auth/device/approve and /deny */
export const DeviceDecision = t.Object({ user_code: UserCode }, { additionalProperties: false });

export const TokenMetadata = t.Object({
  id: t.String(),
  kind: t.String(),
  name: t.String(),
  user_id: t.Nullable(t.String()),
  org_id: t.Nullable(t.String()),
  project_id: t.Nullable(t.String()),
  created_by: t.Nullable(t.String()),
  created_at: t.String(),
  expires_at: t.Nullable(t.String()),
  last_used_at: t.Nullable(t.String()),
  revoked_at: t.Nullable(t.String()),
});
export type TokenMetadataView = Static<typeof TokenMetadata>;
/** POST /tokens */
export const TokenCreate = t.Object(
  {
    kind: t.Union([t.Literal("user"), t.Literal("org"), t.Literal("project")]),
    name: t.String({ minLength: 1, maxLength: 100 }),
    org: t.Optional(t.String({ minLength: 1 })),
    project: t.Optional(t.String({ minLength: 1 })),
    expires_at: t.Optional(t.String({ format: "date-time" })),
  },
  { additionalProperties: false },
);
export const TokenCreated = t.Composite([
  TokenMetadata,
  t.Object({ token: t.String({ description: "the secret: shown once, never again" }) }),
]);
export type TokenCreatedView = Static<typeof TokenCreated>;

/** POST /users/{user}/token: the new token (shown once) and the ids of the tokens it replaced. */
export const UserTokenReset = t.Composite([
  TokenCreated,
  t.Object({ revoked: t.Array(t.String(), { description: "the user's tokens revoked by this reset" }) }),
]);
export type UserTokenResetView = Static<typeof UserTokenReset>;

/** GET /auth/device/{code}: a pending device login as the approver sees it before deciding. */
export const DeviceRequest = t.Object({
  user_code: t.String(),
  client_name: t.Nullable(t.String({ description: "what the client calls itself: not verified" })),
  ip: t.Nullable(t.String()),
  user_agent: t.Nullable(t.String()),
  created_at: t.String(),
  expires_at: t.String(),
  approved: t.Boolean(),
  token_lifetime_days: t.Number(),
});
export type DeviceRequestView = Static<typeof DeviceRequest>;

export const Trust = t.Object({
  id: t.String(),
  project_id: t.String(),
  provider: t.String(),
  issuer: t.String(),
  audiences: t.Array(t.String()),
  config: t.Record(t.String(), t.Unknown()),
  static_jwks: t.Boolean({ description: "keys are pasted, never fetched" }),
  created_at: t.String(),
});
export type TrustView = Static<typeof Trust>;
export type TrustCreateBody = Static<typeof TrustCreate>;
/** POST /projects/{id}/trust */
export const TrustCreate = t.Object(
  {
    provider: t.Union([t.Literal("github"), t.Literal("circleci"), t.Literal("buildkite"), t.Literal("generic")]),
    issuer: t.Optional(
      t.String({ description: "default: the provider's public issuer (GitHub Enterprise Server: its own)" }),
    ),
    audiences: t.Optional(
      t.Array(t.String({ minLength: 1 }), {
        minItems: 1,
        description: "default: this appliance's public URL; add https://depot.dev to let the depot CLI's CI flow in",
      }),
    ),
    owner: t.Optional(t.String()),
    repository: t.Optional(t.String({ description: "github: owner/name" })),
    organizationId: t.Optional(t.String({ description: "circleci: organization UUID" })),
    projectUuid: t.Optional(t.String({ description: "circleci: project UUID" })),
    organizationSlug: t.Optional(t.String({ description: "buildkite" })),
    pipelineSlug: t.Optional(t.String({ description: "buildkite" })),
    repositoryId: t.Optional(t.String({ description: "github: pin GitHub's immutable repository_id (digits)" })),
    repositoryOwnerId: t.Optional(
      t.String({ description: "github: pin GitHub's immutable repository_owner_id (digits)" }),
    ),
    ref: t.Optional(t.String({ description: "github: the ref, e.g. refs/heads/main (exact, or a glob with *)" })),
    environment: t.Optional(t.String({ description: "github: the deployment environment, exactly" })),
    claims: t.Optional(
      t.Record(t.String(), t.String(), {
        description: "generic: claim → exact value or glob (* matches any run of characters)",
      }),
    ),
    static_jwks: t.Optional(
      t.Object(
        { keys: t.Array(t.Record(t.String(), t.Unknown())) },
        { description: "the issuer's JWKS, for issuers this appliance cannot reach" },
      ),
    ),
  },
  { additionalProperties: false },
);
/** POST /oidc/exchange */
export const OidcExchange = t.Object(
  {
    token: t.String({ minLength: 1, maxLength: 16384, description: "the CI job's OIDC JWT" }),
    project: t.Optional(
      t.String({
        minLength: 1,
        maxLength: 200,
        description:
          "the project to act for (id or ORG/NAME): only its trust relationships are considered; required when the token matches those of several projects",
      }),
    ),
  },
  { additionalProperties: false },
);
export const OidcExchanged = t.Object({ token: t.String(), expires_at: t.String(), projects: t.Array(t.String()) });
