/**
 * @module api/routes/device
 * Device login for the CLI: start, poll, and the approval by a logged-in person (the page at
 * /device, or the API with any user credential).
 */
import { Elysia } from "elysia";
import { DeviceDecision, DevicePoll, DeviceRequest, DeviceStart, DeviceStarted } from "../../auth/models.ts";
import { rateLimiterFactory } from "../../auth/rate-limit.ts";
import { actorMacro, asPerson } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

export function deviceRoutes(ctx: IdentityContext) {
  const { deviceLogins } = ctx;
  // Starts are limited per address by the service itself (shared with the depot CLI's StartLogin).
  const polls = rateLimiterFactory({ limit: 120, windowMs: 60_000 });
  const approvals = rateLimiterFactory({ limit: 20, windowMs: 60_000 });

  return new Elysia({ name: "routes/device", prefix: "/api/v1/auth/device" })
    .use(actorMacro(ctx.actorOf))
    .post(
      "",
      ({ request, body }) => {
        return deviceLogins.start(
          { clientName: body.client_name ?? null, ip: ctx.ip(request), userAgent: request.headers.get("user-agent") },
          ctx.publicUrl,
        );
      },
      {
        body: DeviceStart,
        response: { 200: DeviceStarted },
        detail: {
          tags: ["auth"],
          summary:
            "Start a device login (the CLI; 10 a minute per address); the person types the user code at verification_uri",
        },
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
        body: DevicePoll,
        detail: {
          tags: ["auth"],
          summary:
            "Poll a device login: 202 pending, 200 with the token once approved, 410 when over, 429 when polled too fast",
        },
      },
    )
    .get(
      "/:code",
      ({ actor, params }) => {
        asPerson(actor, "self:tokens");
        return deviceLogins.describe(params.code);
      },
      {
        actor: true,
        response: { 200: DeviceRequest },
        detail: {
          tags: ["auth"],
          summary: "What a pending device login is: the client's address, user agent and time (shown before approving)",
          security: [{ bearer: [] }],
        },
      },
    )
    .post(
      "/approve",
      ({ request, actor: caller, body, set }) => {
        const actor = asPerson(caller, "self:tokens");
        approvals.hit([`user:${actor.userId}`]);
        deviceLogins.approve(body.user_code, actor, ctx.ip(request));
        set.status = 204;
      },
      {
        actor: true,
        body: DeviceDecision,
        detail: { tags: ["auth"], summary: "Approve a device login as the caller", security: [{ bearer: [] }] },
      },
    )
    .post(
      "/deny",
      ({ request, actor: caller, body, set }) => {
        const actor = asPerson(caller, "self:tokens");
        deviceLogins.deny(body.user_code, actor, ctx.ip(request));
        set.status = 204;
      },
      {
        actor: true,
        body: DeviceDecision,
        detail: { tags: ["auth"], summary: "Refuse a device login", security: [{ bearer: [] }] },
      },
    );
}
