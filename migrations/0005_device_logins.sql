-- Device login (RFC 8628 style) for the CLI: the CLI holds a secret device code (stored only
-- as SHA-256) and shows a short user code that a logged-in user approves in the browser.
CREATE TABLE device_logins (
  id                  TEXT PRIMARY KEY,
  device_code_sha256  BLOB NOT NULL UNIQUE,
  user_code           TEXT NOT NULL UNIQUE,
  client_name         TEXT,
  ip                  TEXT,
  created_at          TEXT NOT NULL,
  expires_at          TEXT NOT NULL,
  last_poll_at        TEXT,
  approved_by         TEXT REFERENCES users(id) ON DELETE CASCADE,
  approved_at         TEXT,
  denied_at           TEXT,
  consumed_at         TEXT
) STRICT;
