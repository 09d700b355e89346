-- Which slipway releases have served this database, each with when it first did: an upgrade (or a
-- downgrade within the same schema) shows as a new row, and the start-up log names the release
-- that served before.
CREATE TABLE server_versions (
  version          TEXT PRIMARY KEY,
  first_served_at  TEXT NOT NULL,
  last_served_at   TEXT NOT NULL
) STRICT;
