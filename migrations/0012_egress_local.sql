-- Which runner hosts `serve` enforces on the appliance host itself (egress.local_agent), and with
-- which scopes: the administrator's decision alone (before, any organization could name a
-- runner host `local` and have its policy enforced over the appliance host). NULL: not local.
ALTER TABLE egress_runner_hosts ADD COLUMN local_scopes TEXT;   -- JSON array of scope strings
-- The DNS resolvers the host's agent last reported allowing (for DNS only: 53/udp and 53/tcp).
ALTER TABLE egress_runner_hosts ADD COLUMN applied_dns TEXT;    -- JSON array of addresses
