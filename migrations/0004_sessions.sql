-- Web UI sessions after password login. Only SHA-256 of the cookie's secret is kept.
CREATE TABLE sessions (
  id             TEXT PRIMARY KEY,
  user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  secret_sha256  BLOB NOT NULL UNIQUE,
  created_at     TEXT NOT NULL,
  expires_at     TEXT NOT NULL,        -- absolute limit
  last_seen_at   TEXT NOT NULL,        -- idle limit is measured from here
  ip             TEXT,
  user_agent     TEXT,
  revoked_at     TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions(user_id);
