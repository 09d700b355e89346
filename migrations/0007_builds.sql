-- Builds: the lifecycle of one `depot build` / `slipway build`, its options, health, steps and logs.
CREATE TABLE builds (
  id                   TEXT PRIMARY KEY,
  project_id           TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  org_id               TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  status               TEXT NOT NULL CHECK (status IN ('created', 'running', 'finished', 'failed', 'canceled', 'expired')),
  started_by           TEXT NOT NULL,            -- actor label: user:…, token:…, oidc:…
  options              TEXT NOT NULL DEFAULT '[]', -- JSON: tags, outputs, push, load, target per option set
  platforms            TEXT NOT NULL DEFAULT '[]', -- JSON: platforms that asked for a connection
  error                TEXT,
  created_at           TEXT NOT NULL,
  started_at           TEXT,
  finished_at          TEXT,
  deadline_at          TEXT NOT NULL,            -- created_at + the project's hard timeout
  last_health_at       TEXT,
  cancel_requested_at  TEXT,
  cancel_requested_by  TEXT,
  log_bytes            INTEGER NOT NULL DEFAULT 0,
  log_truncated        INTEGER NOT NULL DEFAULT 0 CHECK (log_truncated IN (0, 1))
) STRICT;
CREATE INDEX builds_project ON builds(project_id, created_at DESC);
CREATE INDEX builds_active ON builds(status) WHERE status IN ('created', 'running');

-- Build steps (BuildKit vertexes), one row per digest.
CREATE TABLE build_steps (
  build_id      TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
  digest        TEXT NOT NULL,
  name          TEXT NOT NULL,
  cached        INTEGER NOT NULL DEFAULT 0 CHECK (cached IN (0, 1)),
  started_at    TEXT,
  completed_at  TEXT,
  error         TEXT,
  seq           INTEGER NOT NULL,
  PRIMARY KEY (build_id, digest)
) STRICT;

-- Build logs, capped per build (builds.log_bytes counts what is kept).
CREATE TABLE build_logs (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  build_id  TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
  vertex    TEXT NOT NULL,
  stream    INTEGER NOT NULL,
  at        TEXT NOT NULL,
  data      BLOB NOT NULL
) STRICT;
CREATE INDEX build_logs_build ON build_logs(build_id, id);

-- Per-build client certificates: the build endpoint maps a presented serial to its build.
CREATE TABLE build_certificates (
  serial      TEXT PRIMARY KEY,
  build_id    TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
  platform    TEXT NOT NULL,
  not_after   TEXT NOT NULL,
  created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX build_certificates_build ON build_certificates(build_id);

-- Build tokens name their build.
ALTER TABLE api_tokens ADD COLUMN build_id TEXT REFERENCES builds(id) ON DELETE CASCADE;
