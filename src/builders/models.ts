/**
 * @module builders/models
 * The administrator's view of builders (GET /admin/builders): the builder images each runtime
 * would use and whether the engine has them, each organization's OCI runtime, and every builder
 * with its project, organization, state and image. Imports no service.
 */
import { t, type Static } from "elysia";

export const BuilderImageView = t.Object({
  runtime: t.String({ description: "dockerd or buildkitd" }),
  image: t.String({ description: "the reference the configuration names for that runtime" }),
  configured: t.Boolean({ description: "the runtime builders start with (builders.runtime)" }),
  present: t.Nullable(t.Boolean({ description: "on the Docker engine (null: the engine did not answer)" })),
  id: t.Nullable(t.String()),
  digest: t.Nullable(t.String()),
  suite: t.Nullable(t.String()),
  created: t.Nullable(t.String()),
  size_bytes: t.Nullable(t.Number()),
  status: t.Nullable(t.Union([t.Literal("ok"), t.Literal("warn")], { description: "the configured image's check" })),
  message: t.Nullable(t.String()),
});

export const AdminBuilder = t.Object({
  id: t.String(),
  project_id: t.String(),
  project_name: t.Nullable(t.String()),
  org_id: t.Nullable(t.String()),
  org_slug: t.Nullable(t.String()),
  platform: t.String(),
  state: t.String(),
  runtime: t.String(),
  oci_runtime: t.Nullable(t.String()),
  image: t.Nullable(t.String()),
  image_id: t.Nullable(t.String()),
  started_at: t.Nullable(t.String()),
  last_used_at: t.Nullable(t.String()),
  last_error: t.Nullable(t.String()),
  image_upgrade: t.Nullable(t.Object({ image: t.String(), image_id: t.String(), settings_changed: t.Boolean() })),
});

export const AdminBuilders = t.Object({
  runtime: t.String({ description: "the runtime builders start with" }),
  images: t.Array(BuilderImageView),
  orgs: t.Array(
    t.Object({
      id: t.String(),
      slug: t.String(),
      name: t.String(),
      oci_runtime: t.Nullable(t.String({ description: "null: the engine's default runtime" })),
    }),
  ),
  builders: t.Array(AdminBuilder),
});
export type AdminBuildersView = Static<typeof AdminBuilders>;
