/**
 * @module cli/client/login
 * `slipway login`: remember a server, a token and the CA to trust, so later commands need no
 * flags. With a token (`--token-file`, `SLIPWAY_TOKEN`) it is checked (GET /api/v1/me) and
 * saved; without one, a device login: the person types the code shown here on the server's
 * approval page and the CLI receives a fresh token.
 */
import { hostname } from "node:os";
import { ApiError, UnreachableError, apiClientFactory, seg, type ApiClient } from "../../api-client/index.ts";
import { readCaFile, readClientConfig, sameServer, writeClientConfig } from "./saved-login.ts";
import { SlipwayError, UsageError } from "../../errors.ts";
import { VERSION } from "../../version.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import type {
  DevicePollView as DevicePoll,
  DeviceStartedView as DeviceStart,
  MeView as Me,
} from "../../auth/models.ts";

const MAX_POLL_FAILURES = 5;

/** Starts a device login, shows the code, and polls until it is approved, denied or expired. */
async function deviceLogin(api: ApiClient, ctx: CommandContext): Promise<{ token: string; tokenId: string }> {
  const started = await api.raw<DeviceStart>("POST", "/api/v1/auth/device", {
    client_name: `slipway ${VERSION} on ${hostname()}`.slice(0, 100),
  });
  if (started.status === 404) {
    throw new SlipwayError(
      `${api.server} does not offer device login; log in with 'slipway login --server ${api.server} --token-file FILE' instead`,
    );
  }
  const s = api.result<DeviceStart>(started);
  const minutes = Math.max(1, Math.round(s.expires_in / 60));
  ctx.io.err(`To log in, open this address in a browser where you are signed in to Slipway:`);
  // Never a link with the code filled in (a server may still offer verification_uri_complete):
  // typing the code is what ties the approval to this terminal.
  ctx.io.err(`  ${s.verification_uri}`);
  ctx.io.err(`and approve the code ${s.user_code} (type it there; approve only a code this terminal shows).`);
  ctx.io.err(`Waiting for approval; the code expires in ${minutes} minute${minutes === 1 ? "" : "s"}...`);

  let interval = Math.max(1, s.interval ?? 5) * 1000;
  const deadline = Date.now() + s.expires_in * 1000;
  let failures = 0;
  for (;;) {
    await Bun.sleep(interval);
    if (Date.now() > deadline)
      throw new SlipwayError("the device login expired before it was approved; run 'slipway login' again");
    let r: Awaited<ReturnType<typeof api.raw<DevicePoll>>>;
    try {
      r = await api.raw<DevicePoll>("POST", "/api/v1/auth/device/token", { device_code: s.device_code });
      failures = 0;
    } catch (e) {
      // A server restarting while the person approves: keep trying for a little while.
      if (!(e instanceof UnreachableError) || e.untrusted || ++failures >= MAX_POLL_FAILURES) throw e;
      continue;
    }
    if (r.status === 202) continue;
    if (r.status === 429) {
      const retry = Number(r.headers.get("retry-after"));
      interval = Math.max(interval + 1000, Number.isFinite(retry) ? retry * 1000 : 0);
      continue;
    }
    const body = api.result<DevicePoll>(r);
    if (body.status === "pending") continue;
    if (body.status === "approved" && typeof body.token === "string")
      return { token: body.token, tokenId: body.token_id };
    throw new SlipwayError(`${api.server} answered the device login poll with an unexpected body`);
  }
}

export const loginCommand: Command = {
  name: "login",
  summary:
    "log in to a Slipway server (with --token, or by approving a code in the browser) and save it for later commands",
  usage: "slipway login [--server URL] [--token-file FILE|-] [--cacert FILE] [--device]",
  options: { device: { type: "boolean" } },
  optionHelp: { device: "use the device login even without a terminal (it waits for approval in a browser)" },
  async run(ctx) {
    const saved = readClientConfig(ctx.env);
    const server = ctx.client.server ?? saved?.server;
    if (!server)
      throw new UsageError(
        "login needs --server URL, the address of the Slipway server (e.g. https://slipway.example.com:8443)",
      );
    const reuse = saved !== null && sameServer(server, saved.server);
    const caPem =
      ctx.client.cacert !== undefined ? readCaFile(ctx.client.cacert) : reuse ? saved.cacert_pem : undefined;

    let token = ctx.client.token;
    let tokenId: string | undefined;
    if (!token && !ctx.io.isTTY && ctx.values.device !== true) {
      // A script without a token must not sit waiting ten minutes for a browser.
      throw new UsageError(
        "no token (--token-file or SLIPWAY_TOKEN) and no terminal for a device login; pass --token-file FILE (- for stdin), or --device to wait for approval in a browser",
      );
    }
    if (!token) ({ token, tokenId } = await deviceLogin(apiClientFactory({ server, caPem }), ctx));

    const api = apiClientFactory({ server, token, caPem });
    let me: Me;
    try {
      me = await api.get<Me>("/api/v1/me");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401)
        throw new SlipwayError(`${api.server} did not accept the token (${e.message}); nothing was saved`);
      if (e instanceof ApiError && e.status === 403) {
        throw new SlipwayError(
          `login saves user tokens only, and this is an organization or project token; pass it per command with --token-file or SLIPWAY_TOKEN instead; nothing was saved`,
        );
      }
      throw e;
    }
    const path = writeClientConfig(ctx.env, {
      server: api.server,
      token,
      token_id: tokenId,
      cacert_pem: caPem,
      username: me.username,
    });

    // The token a previous device login made for this CLI is replaced: revoke it (best effort).
    if (reuse && saved.token_id && saved.token && saved.token !== token) {
      try {
        await apiClientFactory({ server, token: saved.token, caPem: saved.cacert_pem }).delete(
          `/api/v1/tokens/${seg(saved.token_id)}`,
        );
      } catch {}
    }

    if (ctx.client.json)
      printJson(ctx.io, {
        server: api.server,
        user_id: me.id,
        username: me.username,
        is_admin: me.is_admin,
        token_id: tokenId ?? null,
        config: path,
      });
    else
      ctx.io.out(
        `logged in to ${api.server} as ${me.username}${me.is_admin ? " (administrator)" : ""}; saved to ${path}`,
      );
    return EXIT_OK;
  },
};
