/**
 * @module registry/models
 * The registry API's shapes over REST (a project's saved images and retention, a collection),
 * defined once: the routes validate with them, the OpenAPI document describes them, and the
 * CLI takes its types from them. Imports no service.
 */
import { t, type Static } from "elysia";
import { BodyInteger } from "../http/schema.ts";

export const Image = t.Object({
  digest: t.String(),
  tags: t.Array(t.String()),
  build_id: t.Nullable(t.String()),
  media_type: t.String(),
  bytes: t.Integer({ description: "config and layers (all platforms of an index)" }),
  pushed_at: t.String(),
  age_seconds: t.Integer(),
});
export const RegistryUsage = t.Object({
  repository: t.String({ description: "what `docker pull` names: <appliance host:port>/<project id>" }),
  retention_days: t.Integer(),
  available: t.Boolean(),
  total_bytes: t.Integer(),
  images: t.Array(Image),
});
export type RegistryUsageView = Static<typeof RegistryUsage>;
/** PUT /projects/{id}/registry */
export const RetentionSet = t.Object(
  {
    retention_days: BodyInteger({
      minimum: 0,
      maximum: 3650,
      description: "days a saved image is kept after its last push (0: until the next collection)",
    }),
  },
  { additionalProperties: false },
);
export const Collection = t.Object({
  deleted: t.Array(t.Object({ project_id: t.String(), digest: t.String(), tags: t.Array(t.String()) })),
  bytes_before: t.Integer(),
  bytes_after: t.Integer(),
  ok: t.Boolean(),
});
