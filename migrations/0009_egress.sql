-- Egress policy per organization: a mode, the default for '*', and ordered rules.
CREATE TABLE egress_policies (
  org_id          TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
  mode            TEXT NOT NULL DEFAULT 'off' CHECK (mode IN ('off', 'monitor', 'enforce')),
  default_action  TEXT NOT NULL DEFAULT 'allow' CHECK (default_action IN ('allow', 'deny')),
  revision        INTEGER NOT NULL DEFAULT 0,
  updated_at      TEXT NOT NULL
) STRICT;

CREATE TABLE egress_rules (
  id          TEXT PRIMARY KEY,
  org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  action      TEXT NOT NULL CHECK (action IN ('allow', 'deny')),
  target      TEXT NOT NULL,       -- canonical: address/CIDR, hostname or *.domain
  ports       TEXT,                -- NULL: every port; else "443,8000-8100"
  comment     TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  UNIQUE (org_id, action, target, ports)
) STRICT;
CREATE INDEX egress_rules_org ON egress_rules(org_id);

-- Runner hosts: where an organization's policy is enforced, with the agent's credential
-- (only its SHA-256) and what it last reported.
CREATE TABLE egress_runner_hosts (
  id                TEXT PRIMARY KEY,
  org_id            TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name              TEXT NOT NULL,
  scopes            TEXT NOT NULL,          -- JSON array of scope strings (host, uid:N, docker:NET, bridge:IF, subnet:CIDR)
  token_sha256      BLOB NOT NULL UNIQUE,
  created_at        TEXT NOT NULL,
  last_seen_at      TEXT,
  applied_revision  TEXT,
  applied_ok        INTEGER,
  applied_error     TEXT,
  applied_at        TEXT,
  UNIQUE (org_id, name)
) STRICT;

-- Would-be blocks (monitor mode) and blocks, deduplicated per host, scope, source and destination.
CREATE TABLE egress_events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  host_id     TEXT NOT NULL REFERENCES egress_runner_hosts(id) ON DELETE CASCADE,
  action      TEXT NOT NULL CHECK (action IN ('blocked', 'would-block')),
  scope       TEXT NOT NULL,
  source      TEXT NOT NULL,        -- uid:N or the container's address
  dst         TEXT NOT NULL,
  port        INTEGER NOT NULL,
  protocol    TEXT NOT NULL,
  hostname    TEXT,
  count       INTEGER NOT NULL,
  first_at    TEXT NOT NULL,
  last_at     TEXT NOT NULL,
  UNIQUE (host_id, action, scope, source, dst, port, protocol)
) STRICT;
CREATE INDEX egress_events_org ON egress_events(org_id, last_at);
