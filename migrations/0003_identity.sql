-- Projects: one organization's unit of builds, builders and caches, with its settings.
CREATE TABLE projects (
  id                            TEXT PRIMARY KEY,
  org_id                        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name                          TEXT NOT NULL,
  cache_size_gb                 INTEGER NOT NULL DEFAULT 50 CHECK (cache_size_gb BETWEEN 1 AND 10000),
  cache_keep_days               INTEGER NOT NULL DEFAULT 14 CHECK (cache_keep_days BETWEEN 1 AND 3650),
  builder_cpus                  INTEGER NOT NULL DEFAULT 2 CHECK (builder_cpus BETWEEN 1 AND 256),
  builder_memory_mb             INTEGER NOT NULL DEFAULT 4096 CHECK (builder_memory_mb BETWEEN 256 AND 1048576),
  builder_idle_timeout_seconds  INTEGER NOT NULL DEFAULT 300 CHECK (builder_idle_timeout_seconds BETWEEN 30 AND 86400),
  build_timeout_seconds         INTEGER NOT NULL DEFAULT 7200 CHECK (build_timeout_seconds BETWEEN 60 AND 86400),
  created_at                    TEXT NOT NULL,
  UNIQUE (org_id, name)
) STRICT;

-- Project tokens name their project; OIDC-exchanged tokens may cover several (api_token_projects).
ALTER TABLE api_tokens ADD COLUMN project_id TEXT REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX api_tokens_project ON api_tokens(project_id);

CREATE TABLE api_token_projects (
  token_id    TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
  project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  PRIMARY KEY (token_id, project_id)
) STRICT;

-- Audit log: append-only (the triggers refuse updates and deletes).
CREATE TABLE audit_log (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  at        TEXT NOT NULL,
  org_id    TEXT,                    -- NULL: appliance-wide (only the administrator reads it)
  actor     TEXT NOT NULL,           -- e.g. user:usr_…, token:tok_…, anonymous
  action    TEXT NOT NULL,           -- e.g. token.create, auth.failure, member.role
  target    TEXT,
  outcome   TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
  ip        TEXT,
  details   TEXT NOT NULL DEFAULT '{}'   -- JSON, never secrets
) STRICT;
CREATE INDEX audit_log_org ON audit_log(org_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- OIDC trust relationships: which CI tokens may act for a project.
CREATE TABLE trust_relationships (
  id           TEXT PRIMARY KEY,
  project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  provider     TEXT NOT NULL CHECK (provider IN ('github', 'circleci', 'buildkite', 'generic')),
  issuer       TEXT NOT NULL,
  audiences    TEXT NOT NULL,          -- JSON array of accepted audiences
  config       TEXT NOT NULL,          -- JSON: the provider's claim constraints
  static_jwks  TEXT,                   -- JSON JWKS for an issuer the appliance cannot reach
  created_by   TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX trust_relationships_issuer ON trust_relationships(issuer);
CREATE INDEX trust_relationships_project ON trust_relationships(project_id);
