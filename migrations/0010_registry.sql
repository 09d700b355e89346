-- The appliance's registry (a supervised docker-registry; Slipway is its token service).
-- The token signing key: ES256, its PKCS#8 sealed under the master key (associated data
-- 'registry-signing-key:<id>'). One row; a new row would rotate it.
CREATE TABLE registry_signing_keys (
  id          TEXT PRIMARY KEY,
  sealed_key  BLOB NOT NULL,
  created_at  TEXT NOT NULL
) STRICT;

-- Saved images, learned from successful manifest PUTs through serve's proxy: one row per tag
-- (a build's id is one tag, each save tag another). A later push of the same tag replaces it.
CREATE TABLE registry_images (
  project_id  TEXT NOT NULL,
  tag         TEXT NOT NULL,
  digest      TEXT NOT NULL,
  media_type  TEXT NOT NULL,
  build_id    TEXT,
  bytes       INTEGER NOT NULL,
  pushed_at   TEXT NOT NULL,
  PRIMARY KEY (project_id, tag)
) STRICT;
CREATE INDEX registry_images_pushed ON registry_images (pushed_at);

-- Per-project registry settings (absent: the [registry] section's defaults). 0 days: a saved
-- image is deleted at the next collection.
CREATE TABLE registry_settings (
  project_id      TEXT PRIMARY KEY,
  retention_days  INTEGER NOT NULL CHECK (retention_days BETWEEN 0 AND 3650),
  updated_at      TEXT NOT NULL
) STRICT;
