/**
 * @module builders/models
 * The builders API's response shapes over REST (a project's builders, its build cache and what a
 * reset did; the administrator's view of every builder and builder image), defined once: the
 * routes answer with them, the OpenAPI document describes them, and the web UI takes its types
 * from them. Imports no service.
 */
import { t, type Static } from "elysia";

export const Builder = t.Object({
  platform: t.String(),
  state: t.String({ description: "absent | starting | ready | idle | stopping" }),
  runtime: t.String(),
  security_profile: t.Nullable(t.String()),
  emulated: t.Boolean(),
  image: t.Nullable(t.String()),
  image_id: t.Nullable(t.String()),
  image_upgrade: t.Nullable(
    t.Object(
      { image: t.String(), image_id: t.String(), settings_changed: t.Boolean() },
      { additionalProperties: true },
    ),
  ),
  started_at: t.Nullable(t.String({ description: "when its container last started" })),
  updated_at: t.String({ description: "when its state last changed" }),
  last_used_at: t.Nullable(t.String()),
  last_error: t.Nullable(t.String()),
});
export type BuilderView = Static<typeof Builder>;

export const CachePlatform = t.Object({
  platform: t.String(),
  used_bytes: t.Integer(),
  size_bytes: t.Nullable(
    t.Integer({
      description: "the volume's size; null for a plain directory (no fixed size: the project's cache size applies)",
    }),
  ),
  encryption: t.String(),
});
export const ProjectCache = t.Object({
  project_id: t.String(),
  encryption: t.String({ description: "how the appliance encrypts cache volumes" }),
  size_gb: t.Integer({ description: "each platform's cache volume size" }),
  keep_days: t.Integer(),
  platforms: t.Array(CachePlatform),
});
export type ProjectCacheView = Static<typeof ProjectCache>;

export const CacheReset = t.Object({
  project_id: t.String(),
  platforms: t.Array(t.String(), { description: "the platforms whose builders and cache volumes went" }),
});
export type CacheResetView = Static<typeof CacheReset>;

/** GET /admin/builders: the images each runtime would use, each organization's OCI runtime, every builder. */
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
