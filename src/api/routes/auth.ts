/**
 * @module api/routes/auth
 * Password login and sessions for the web UI, and password changes. Login is rate limited per
 * address and per username; a wrong username and a wrong password look the same.
 */
import { Elysia, t } from "elysia";
import { Login, PasswordChange, Session } from "../../auth/models.ts";
import { rateLimiterFactory } from "../../auth/rate-limit.ts";
import { SESSION_COOKIE } from "../../auth/sessions.ts";
import { NotFoundError, UnauthenticatedError } from "../../errors.ts";
import { actorMacro, asPerson } from "../actor.ts";
import { sessionCookie, type IdentityContext } from "../identity.ts";

export function authRoutes(ctx: IdentityContext, opts: { secureCookies: boolean }) {
  const { sessions, orgs } = ctx;
  const perAddress = rateLimiterFactory({ limit: 20, windowMs: 60_000 });
  const perUser = rateLimiterFactory({ limit: 5, windowMs: 60_000 });
  const cookie = (value: string, maxAge: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${opts.secureCookies ? "; Secure" : ""}`;

  return new Elysia({ name: "routes/auth", prefix: "/api/v1" })
    .use(actorMacro(ctx.actorOf))
    .post(
      "/auth/login",
      async ({ request, body, set }) => {
        const ip = ctx.ip(request);
        perAddress.hit([`ip:${ip}`]);
        perUser.hit([`user:${body.username.toLowerCase()}`]);
        const { secret, session } = await sessions.login(body.username, body.password, {
          ip,
          userAgent: request.headers.get("user-agent"),
        });
        const user = orgs.getUser(session.user_id);
        set.headers["set-cookie"] = cookie(secret, Math.floor((Date.parse(session.expires_at) - Date.now()) / 1000));
        return { user: { id: user.id, username: user.username, is_admin: user.is_admin }, session };
      },
      {
        body: Login,
        detail: {
          tags: ["auth"],
          summary: "Log in with a password; sets a Secure, HttpOnly, SameSite=Strict session cookie",
        },
      },
    )
    .post(
      "/auth/logout",
      ({ request, actor: caller, set }) => {
        const actor = asPerson(caller, "self:read");
        const secret = sessionCookie(request);
        if (!secret) throw new UnauthenticatedError("not logged in with a session");
        sessions.revoke(sessions.resolve(secret).sessionId, actor.userId);
        set.headers["set-cookie"] = cookie("", 0);
        set.status = 204;
      },
      { actor: true, detail: { tags: ["auth"], summary: "End the current session" } },
    )
    .get(
      "/auth/sessions",
      ({ actor, request }) => {
        const list = sessions.list(asPerson(actor, "self:read").userId);
        // Which one is this browser's, so the account page can say so (and sign out when it ends).
        const secret = sessionCookie(request);
        let currentId: string | null = null;
        if (secret) {
          try {
            currentId = sessions.resolve(secret).sessionId;
          } catch {
            currentId = null; // a stale cookie beside a bearer token: none of these is "this one"
          }
        }
        return list.map((s) => ({ ...s, current: s.id === currentId }));
      },
      {
        actor: true,
        response: { 200: t.Array(Session) },
        detail: { tags: ["auth"], summary: "The caller's open sessions", security: [{ bearer: [] }] },
      },
    )
    .delete(
      "/auth/sessions/:id",
      ({ actor, params, set }) => {
        if (!sessions.revoke(params.id, asPerson(actor, "self:read").userId))
          throw new NotFoundError("no such session");
        set.status = 204;
      },
      {
        actor: true,
        detail: { tags: ["auth"], summary: "End one of the caller's sessions", security: [{ bearer: [] }] },
      },
    )
    .put(
      "/me/password",
      async ({ actor: caller, body, set }) => {
        const actor = asPerson(caller, "self:read");
        perUser.hit([`password-change:${actor.userId}`]);
        await sessions.changePassword(actor.userId, body.current_password ?? null, body.new_password);
        set.status = 204;
      },
      {
        actor: true,
        body: PasswordChange,
        detail: {
          tags: ["auth"],
          summary: "Set or change the caller's password (the current one is required once set)",
          security: [{ bearer: [] }],
        },
      },
    );
}
