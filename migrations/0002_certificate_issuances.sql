-- Every certificate the appliance signs, for audit: who asked, for what, valid until when.
-- Private keys of leaves are never stored.
CREATE TABLE certificate_issuances (
  serial      TEXT PRIMARY KEY,
  ca_id       TEXT NOT NULL REFERENCES certificate_authorities(id),
  usage       TEXT NOT NULL CHECK (usage IN ('server', 'client')),
  subject     TEXT NOT NULL,
  names       TEXT NOT NULL,          -- JSON: {"dns": [...], "ip": [...], "uri": [...]}
  not_before  TEXT NOT NULL,
  not_after   TEXT NOT NULL,
  requester   TEXT NOT NULL,          -- e.g. 'appliance:api-server', later 'build:<id>'
  created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX certificate_issuances_created ON certificate_issuances(created_at);
