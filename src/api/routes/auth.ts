/**
 * @module api/routes/auth
 * Password login and sessions for the web UI, and password changes. Login is rate limited per
 * address and per username; a wrong username and a wrong password look the same.
 */
import { Elysia, t } from "elysia";
import { authorize, type Actor } from "../../auth/index.ts";
import { rateLimiterFactory } from "../../auth/rate-limit.ts";
import { SESSION_COOKIE } from "../../auth/sessions.ts";
import { NotFoundError, UnauthenticatedError } from "../../errors.ts";
import { sessionCookie, type IdentityContext } from "../identity.ts";

const Session = t.Object({
  id: t.String(),
  user_id: t.String(),
  created_at: t.String(),
  expires_at: t.String(),
  last_seen_at: t.String(),
  ip: t.Nullable(t.String()),
  user_agent: t.Nullable(t.String()),
});

export function authRoutes(ctx: IdentityContext, opts: { secureCookies: boolean }) {
  const { sessions, orgs } = ctx;
  const perAddress = rateLimiterFactory({ limit: 20, windowMs: 60_000 });
  const perUser = rateLimiterFactory({ limit: 5, windowMs: 60_000 });
  const cookie = (value: string, maxAge: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${opts.secureCookies ? "; Secure" : ""}`;
  const userOf = (actor: Actor) => {
    authorize(actor, "self:read");
    return actor as Extract<Actor, { kind: "user" }>;
  };

  return new Elysia({ name: "routes/auth", prefix: "/api/v1" })
    .post(
      "/auth/login",
      async ({ request, body, set }) => {
        const ip = ctx.ip(request);
        perAddress.hit([`ip:${ip}`]);
        perUser.hit([`user:${body.username.toLowerCase()}`]);
        const { secret, session } = await sessions.login(body.username, body.password, { ip, userAgent: request.headers.get("user-agent") });
        const user = orgs.getUser(session.user_id);
        set.headers["set-cookie"] = cookie(secret, Math.floor((Date.parse(session.expires_at) - Date.now()) / 1000));
        return { user: { id: user.id, username: user.username, is_admin: user.is_admin }, session };
      },
      {
        body: t.Object({ username: t.String({ minLength: 1, maxLength: 64 }), password: t.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }),
        detail: { tags: ["auth"], summary: "Log in with a password; sets a Secure, HttpOnly, SameSite=Strict session cookie" },
      },
    )
    .post(
      "/auth/logout",
      async ({ request, set }) => {
        const actor = userOf(await ctx.actorOf(request));
        const secret = sessionCookie(request);
        if (!secret) throw new UnauthenticatedError("not logged in with a session");
        sessions.revoke(sessions.resolve(secret).sessionId, actor.userId);
        set.headers["set-cookie"] = cookie("", 0);
        set.status = 204;
      },
      { detail: { tags: ["auth"], summary: "End the current session" } },
    )
    .get("/auth/sessions", async ({ request }) => sessions.list(userOf(await ctx.actorOf(request)).userId), {
      response: { 200: t.Array(Session) },
      detail: { tags: ["auth"], summary: "The caller's open sessions", security: [{ bearer: [] }] },
    })
    .delete(
      "/auth/sessions/:id",
      async ({ request, params, set }) => {
        const actor = userOf(await ctx.actorOf(request));
        if (!sessions.revoke(params.id, actor.userId)) throw new NotFoundError("no such session");
        set.status = 204;
      },
      { detail: { tags: ["auth"], summary: "End one of the caller's sessions", security: [{ bearer: [] }] } },
    )
    .put(
      "/me/password",
      async ({ request, body, set }) => {
        const actor = userOf(await ctx.actorOf(request));
        perUser.hit([`password-change:${actor.userId}`]);
        await sessions.changePassword(actor.userId, body.current_password ?? null, body.new_password);
        set.status = 204;
      },
      {
        body: t.Object({ current_password: t.Optional(t.String({ maxLength: 1024 })), new_password: t.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }),
        detail: { tags: ["auth"], summary: "Set or change the caller's password (the current one is required once set)", security: [{ bearer: [] }] },
      },
    );
}
