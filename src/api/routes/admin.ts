/**
 * @module api/routes/admin
 * The administrator's views of the appliance's own machinery: builder images and which builders
 * run which image, and the certificate authorities. Read only; each reads through the service
 * that owns the data (builders, pki, projects, organizations).
 */
import { Elysia } from "elysia";
import { authorize } from "../../auth/index.ts";
import type { BuilderRow } from "../../builders/types.ts";
import { AdminBuilders } from "../../builders/models.ts";
import type { AuthorityDescription } from "../../pki/authority.ts";
import { CertificateAuthorities } from "../../pki/models.ts";
import { actorMacro } from "../actor.ts";
import type { IdentityContext } from "../identity.ts";

const bearer = [{ bearer: [] }];
const DAY = 86_400_000;

/** What the admin routes read, handed over by the appliance's start-up. */
export interface AdminRoutesDeps {
  ctx: IdentityContext;
  builders: {
    all(): BuilderRow[];
    outdated(): { builderId: string; to: { image: string; imageId: string }; settingsChanged: boolean }[];
  };
  images: {
    /** The runtime builders start with, and each runtime's configured image. */
    runtime: string;
    refs: Record<string, string>;
    /** The configured image's verdict (builders/image's judgeImage). */
    judge(): Promise<{ status: "ok" | "warn"; message: string }>;
    inspect(ref: string): Promise<{
      present: boolean;
      id?: string;
      digest?: string;
      suite?: string;
      created?: string;
      sizeBytes?: number;
    }>;
  };
  pki: { describe(): AuthorityDescription[] };
  now?: () => Date;
}

export function adminRoutes(deps: AdminRoutesDeps) {
  const { ctx } = deps;
  const now = deps.now ?? (() => new Date());

  const images = async () => {
    const verdict = await deps.images.judge();
    return Promise.all(
      Object.entries(deps.images.refs).map(async ([runtime, image]) => {
        const state = await deps.images.inspect(image).catch(() => null);
        const configured = runtime === deps.images.runtime;
        return {
          runtime,
          image,
          configured,
          present: state ? state.present : null,
          id: state?.id ?? null,
          digest: state?.digest ?? null,
          suite: state?.suite ?? null,
          created: state?.created ?? null,
          size_bytes: state?.sizeBytes ?? null,
          status: configured ? verdict.status : null,
          message: configured ? verdict.message : null,
        };
      }),
    );
  };

  /** Every builder, named by its project and organization (`orgs`: all of them, as the administrator sees them). */
  const builders = (orgList: { id: string; slug: string }[]) => {
    const rows = deps.builders.all();
    const upgrades = new Map(deps.builders.outdated().map((o) => [o.builderId, o]));
    const projects = new Map(ctx.projects.listIds([...new Set(rows.map((b) => b.project_id))]).map((p) => [p.id, p]));
    const orgs = new Map(orgList.map((o) => [o.id, o]));
    return rows.map((b) => {
      const p = projects.get(b.project_id);
      const o = upgrades.get(b.id);
      return {
        id: b.id,
        project_id: b.project_id,
        project_name: p?.name ?? null,
        org_id: p?.org_id ?? null,
        org_slug: p ? (orgs.get(p.org_id)?.slug ?? null) : null,
        platform: b.platform,
        state: b.state,
        runtime: b.runtime,
        oci_runtime: b.oci_runtime,
        image: b.image,
        image_id: b.image_id,
        started_at: b.started_at,
        last_used_at: b.last_used_at,
        last_error: b.last_error,
        image_upgrade: o ? { image: o.to.image, image_id: o.to.imageId, settings_changed: o.settingsChanged } : null,
      };
    });
  };

  return new Elysia({ name: "routes/admin", prefix: "/api/v1/admin" })
    .use(actorMacro(ctx.actorOf))
    .get(
      "/builders",
      async ({ actor }) => {
        authorize(actor, "appliance:admin");
        const orgs = ctx.orgs.listFor(actor);
        return {
          runtime: deps.images.runtime,
          images: await images(),
          orgs: orgs.map((o) => ({ id: o.id, slug: o.slug, name: o.name, oci_runtime: ctx.orgs.builderRuntime(o.id) })),
          builders: builders(orgs),
        };
      },
      {
        actor: true,
        response: { 200: AdminBuilders },
        detail: {
          tags: ["builders"],
          summary:
            "Builder images (per runtime, present or not), each organization's OCI runtime, and every builder with its project and image (administrator)",
          security: bearer,
        },
      },
    )
    .get(
      "/ca",
      ({ actor }) => {
        authorize(actor, "appliance:admin");
        const t = now().getTime();
        return deps.pki
          .describe()
          .map((ca) => ({ ...ca, days_left: Math.floor((Date.parse(ca.not_after) - t) / DAY) }));
      },
      {
        actor: true,
        response: { 200: CertificateAuthorities },
        detail: {
          tags: ["pki"],
          summary:
            "The certificate authorities: roots and intermediates with subject, fingerprint and validity (administrator); never a key",
          security: bearer,
        },
      },
    );
}
