/**
 * @module api/routes/device
 * Device login for the CLI: start, poll, and the approval by a logged-in person (the page at
 * /device, or the API with any user credential).
 */
import { Elysia, t } from "elysia";
import { authorize, type Actor } from "../../auth/index.ts";
import { rateLimiterFactory } from "../../auth/rate-limit.ts";
import type { IdentityContext } from "../identity.ts";

const CLIENT_NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$";
const UserCode = t.String({ minLength: 8, maxLength: 16, description: "the code the CLI shows, e.g. BCDF-GHJK" });

export function deviceRoutes(ctx: IdentityContext) {
  const { deviceLogins } = ctx;
  // Starts are limited per address by the service itself (shared with the depot CLI's StartLogin).
  const polls = rateLimiterFactory({ limit: 120, windowMs: 60_000 });
  const approvals = rateLimiterFactory({ limit: 20, windowMs: 60_000 });
  const person = async (request: Request) => {
    const actor = await ctx.actorOf(request);
    authorize(actor, "self:tokens");
    return actor as Extract<Actor, { kind: "user" }>;
  };

  return new Elysia({ name: "routes/device", prefix: "/api/v1/auth/device" })
    .post(
      "",
      ({ request, body }) => {
        return deviceLogins.start({ clientName: body.client_name ?? null, ip: ctx.ip(request), userAgent: request.headers.get("user-agent") }, ctx.publicUrl);
      },
      {
        // The client's name for itself is shown to the approver as unverified; no control or
        // direction-override characters that could make it pass for something else.
        body: t.Object({ client_name: t.Optional(t.String({ maxLength: 100, pattern: CLIENT_NAME_PATTERN })) }, { additionalProperties: false }),
        response: {
          200: t.Object({ device_code: t.String(), user_code: t.String(), verification_uri: t.String(), expires_in: t.Number(), interval: t.Number() }),
        },
        detail: { tags: ["auth"], summary: "Start a device login (the CLI; 10 a minute per address); the person types the user code at verification_uri" },
      },
    )
    .post(
      "/token",
      ({ request, body, set }) => {
        polls.hit([`ip:${ctx.ip(request)}`]);
        const r = deviceLogins.poll(body.device_code);
        if (r.status === "pending") set.status = 202;
        return r;
      },
      {
        body: t.Object({ device_code: t.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
        detail: { tags: ["auth"], summary: "Poll a device login: 202 pending, 200 with the token once approved, 410 when over, 429 when polled too fast" },
      },
    )
    .get(
      "/:code",
      async ({ request, params }) => {
        await person(request);
        return deviceLogins.describe(params.code);
      },
      { detail: { tags: ["auth"], summary: "What a pending device login is: the client's address, user agent and time (shown before approving)", security: [{ bearer: [] }] } },
    )
    .post(
      "/approve",
      async ({ request, body, set }) => {
        const actor = await person(request);
        approvals.hit([`user:${actor.userId}`]);
        deviceLogins.approve(body.user_code, actor, ctx.ip(request));
        set.status = 204;
      },
      { body: t.Object({ user_code: UserCode }, { additionalProperties: false }), detail: { tags: ["auth"], summary: "Approve a device login as the caller", security: [{ bearer: [] }] } },
    )
    .post(
      "/deny",
      async ({ request, body, set }) => {
        const actor = await person(request);
        deviceLogins.deny(body.user_code, actor, ctx.ip(request));
        set.status = 204;
      },
      { body: t.Object({ user_code: UserCode }, { additionalProperties: false }), detail: { tags: ["auth"], summary: "Refuse a device login", security: [{ bearer: [] }] } },
    );
}
