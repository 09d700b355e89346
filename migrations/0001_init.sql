-- The appliance itself: one row, created on first start.
CREATE TABLE appliance (
  singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
  id          TEXT NOT NULL,           -- stable id, used in certificate names and container labels
  created_at  TEXT NOT NULL
) STRICT;

-- Certificate authorities: the root and the intermediates it signs. Private keys are sealed
-- (AES-256-GCM) under the master key; the plain key never touches disk.
CREATE TABLE certificate_authorities (
  id          TEXT PRIMARY KEY,
  purpose     TEXT NOT NULL CHECK (purpose IN ('root', 'server', 'build-client')),
  parent_id   TEXT REFERENCES certificate_authorities(id),
  serial      TEXT NOT NULL UNIQUE,
  subject     TEXT NOT NULL,
  cert_pem    TEXT NOT NULL,
  key_sealed  BLOB NOT NULL,
  not_before  TEXT NOT NULL,
  not_after   TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  retired_at  TEXT,                    -- no longer used to sign; still trusted until not_after
  CHECK ((purpose = 'root') = (parent_id IS NULL))
) STRICT;
-- At most one active authority per purpose.
CREATE UNIQUE INDEX certificate_authorities_active ON certificate_authorities(purpose) WHERE retired_at IS NULL;

CREATE TABLE users (
  id             TEXT PRIMARY KEY,
  username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash  TEXT,                 -- argon2id; NULL until a password is set
  is_admin       INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
  created_at     TEXT NOT NULL
) STRICT;

CREATE TABLE organizations (
  id          TEXT PRIMARY KEY,
  slug        TEXT NOT NULL UNIQUE,
  name        TEXT NOT NULL,
  created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE memberships (
  org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role        TEXT NOT NULL CHECK (role IN ('owner', 'user')),
  created_at  TEXT NOT NULL,
  PRIMARY KEY (org_id, user_id)
) STRICT;
CREATE INDEX memberships_user ON memberships(user_id);

-- API credentials. Only SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE api_tokens (
  id            TEXT PRIMARY KEY,
  kind          TEXT NOT NULL CHECK (kind IN ('user', 'org', 'project', 'oidc', 'build')),
  secret_sha256 BLOB NOT NULL UNIQUE,
  name          TEXT NOT NULL,
  user_id       TEXT REFERENCES users(id) ON DELETE CASCADE,
  org_id        TEXT REFERENCES organizations(id) ON DELETE CASCADE,
  created_at    TEXT NOT NULL,
  expires_at    TEXT,
  last_used_at  TEXT,
  revoked_at    TEXT,
  CHECK (kind <> 'user' OR user_id IS NOT NULL),
  CHECK (kind <> 'org' OR org_id IS NOT NULL)
) STRICT;
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE INDEX api_tokens_org ON api_tokens(org_id);
