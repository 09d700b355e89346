/**
 * @module cli/client/logout
 * `slipway logout`: forget the saved token (the server and CA stay, for the next login). A token
 * that device login created for this CLI is also revoked on the server. Idempotent.
 */
import { ApiError, apiClientFactory, seg } from "../../api-client/index.ts";
import { readClientConfig, sameServer, writeClientConfig } from "./saved-login.ts";
import { EXIT_OK, printJson, type Command } from "../command.ts";

export const logoutCommand: Command = {
  name: "logout",
  summary: "forget the saved login (and revoke its token on the server when login created it)",
  usage: "slipway logout",
  options: {},
  optionHelp: {},
  async run(ctx) {
    const saved = readClientConfig(ctx.env);
    const report = (result: { server: string | null; logged_out: boolean; revoked: boolean }, text: string) => {
      if (ctx.client.json) printJson(ctx.io, result);
      else ctx.io.out(text);
      return EXIT_OK;
    };
    if (!saved?.token)
      return report(
        { server: saved?.server ?? null, logged_out: false, revoked: false },
        "not logged in; nothing to do",
      );
    if (ctx.client.server !== undefined && !sameServer(ctx.client.server, saved.server)) {
      return report(
        { server: ctx.client.server, logged_out: false, revoked: false },
        `not logged in to ${ctx.client.server} (the saved login is for ${saved.server}); nothing to do`,
      );
    }

    let revoked = false;
    if (saved.token_id) {
      try {
        await apiClientFactory({ server: saved.server, token: saved.token, caPem: saved.cacert_pem }).delete(
          `/api/v1/tokens/${seg(saved.token_id)}`,
        );
        revoked = true;
      } catch (e) {
        // 401/404: the token is already revoked, expired or gone; anything else: say so, go on.
        if (!(e instanceof ApiError && (e.status === 401 || e.status === 404))) {
          ctx.io.err(
            `slipway: warning: could not revoke the token on the server (${(e as Error).message}); it stays valid until it expires or an owner revokes it (id ${saved.token_id})`,
          );
        }
      }
    }
    writeClientConfig(ctx.env, { server: saved.server, cacert_pem: saved.cacert_pem });
    return report(
      { server: saved.server, logged_out: true, revoked },
      `logged out of ${saved.server}${revoked ? "; the token was revoked" : ""}`,
    );
  },
};
