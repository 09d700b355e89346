-- Builders: one BuildKit container per (project, platform), its lifecycle kept here so a restart
-- of serve can adopt what still runs and clean up what does not.
CREATE TABLE builders (
  id                TEXT PRIMARY KEY,
  project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  platform          TEXT NOT NULL,
  runtime           TEXT NOT NULL CHECK (runtime IN ('buildkitd', 'dockerd')),
  state             TEXT NOT NULL CHECK (state IN ('absent', 'starting', 'ready', 'idle', 'stopping')),
  container_id      TEXT,
  container_name    TEXT,
  network_id        TEXT,
  image             TEXT,
  image_id          TEXT,
  security_profile  TEXT CHECK (security_profile IN ('privileged', 'fallback')),
  oci_runtime       TEXT,
  emulated          INTEGER NOT NULL DEFAULT 0 CHECK (emulated IN (0, 1)),
  socket_path       TEXT,
  last_error        TEXT,
  started_at        TEXT,
  ready_at          TEXT,
  last_used_at      TEXT,
  updated_at        TEXT NOT NULL,
  UNIQUE (project_id, platform)
) STRICT;
CREATE INDEX builders_state ON builders(state);

-- An organization may ask for a harder boundary than containers: an OCI runtime registered with
-- the Docker engine (e.g. a VM-isolating one). NULL: the engine's default runtime.
ALTER TABLE organizations ADD COLUMN builder_oci_runtime TEXT;
