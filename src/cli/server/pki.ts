/**
 * @module cli/server/pki
 * `slipway pki`: the appliance's certificate authorities, offline on the data dir. Rotating an
 * intermediate takes effect for new certificates at once (serve reads the active CA per
 * issuance); rotating the root rewrites ca.pem with both roots, which clients then need.
 */
import { join } from "node:path";
import { readApplianceId } from "../../appliance/identity-row.ts";
import { CA_FILE } from "../../appliance/state.ts";
import { auditServiceFactory } from "../../auth/audit.ts";
import { dispatch } from "../subcommands.ts";
import { PreconditionError, UsageError } from "../../errors.ts";
import { writeFileAtomic } from "../../fs/atomic.ts";
import { pkiServiceFactory } from "../../pki/index.ts";
import { EXIT_OK, printJson, type Command, type CommandContext } from "../command.ts";
import { SERVER_FLAGS, SERVER_HELP, SERVER_OPTIONS } from "./options.ts";
import { existingSealer, openDataDir } from "./offline.ts";

const ACTOR = "cli:pki";

async function withPki<T>(
  ctx: CommandContext,
  fn: (pki: ReturnType<typeof pkiServiceFactory>, dataDir: string) => Promise<T>,
): Promise<T> {
  const d = openDataDir(ctx);
  try {
    const sealer = await existingSealer(d, ctx.env);
    const applianceId = readApplianceId(d.db);
    if (!applianceId) throw new PreconditionError(`${d.dataDir} has no appliance yet: run slipway serve once first`);
    return await fn(
      pkiServiceFactory({ db: d.db, sealer, applianceId, audit: auditServiceFactory({ db: d.db }) }),
      d.dataDir,
    );
  } finally {
    d.db.close();
  }
}

function list(ctx: CommandContext, pki: ReturnType<typeof pkiServiceFactory>): void {
  const rows = pki.list();
  if (ctx.client.json) {
    printJson(ctx.io, rows);
    return;
  }
  for (const r of rows)
    ctx.io.out(
      `${r.purpose.padEnd(13)} ${r.serial}  until ${r.not_after.slice(0, 10)}  ${r.retired_at ? `retired ${r.retired_at.slice(0, 10)}` : "active"}`,
    );
}

export const pkiCommand: Command = {
  name: "pki",
  summary: "the appliance's certificate authorities: list, rotate an intermediate, re-issue the root",
  usage: [
    "slipway pki list",
    "       slipway pki rotate --purpose build-client|server",
    "       slipway pki rotate-root",
  ].join("\n"),
  options: { ...SERVER_OPTIONS, purpose: { type: "string" } },
  optionHelp: { ...SERVER_HELP, purpose: "rotate: which intermediate (build-client or server)" },
  positionals: true,
  run: (ctx) =>
    dispatch(
      "pki",
      {
        list: {
          options: SERVER_FLAGS,
          run: () =>
            withPki(ctx, async (pki) => {
              list(ctx, pki);
              return EXIT_OK;
            }),
        },
        rotate: {
          options: [...SERVER_FLAGS, "purpose"],
          run: () =>
            withPki(ctx, async (pki) => {
              const purpose = ctx.values.purpose;
              if (purpose !== "build-client" && purpose !== "server")
                throw new UsageError("pki rotate needs --purpose build-client or --purpose server");
              const row = await pki.rotateIntermediate(purpose, ACTOR);
              if (ctx.client.json)
                printJson(ctx.io, { id: row.id, purpose, serial: row.serial, not_after: row.not_after });
              else
                ctx.io.out(
                  `new ${purpose} intermediate ${row.serial}; the old one stays trusted until it expires${purpose === "server" ? " (restart serve to use it)" : ""}`,
                );
              return EXIT_OK;
            }),
        },
        "rotate-root": {
          options: SERVER_FLAGS,
          run: () =>
            withPki(ctx, async (pki, dataDir) => {
              const created = await pki.rotateRoot(ACTOR);
              const caFile = join(dataDir, CA_FILE);
              writeFileAtomic(caFile, pki.trustedRootsPem(), 0o644);
              if (ctx.client.json)
                printJson(ctx.io, {
                  created: created.map((c) => ({ purpose: c.purpose, serial: c.serial })),
                  ca_file: caFile,
                });
              else {
                ctx.io.out(`new root ${created[0]!.serial} and intermediates; ${caFile} now holds both roots`);
                ctx.io.out(
                  "give clients the new ca.pem, then restart serve so the API certificate comes from the new root",
                );
              }
              return EXIT_OK;
            }),
        },
      },
      ctx,
    ),
};
