-- Device logins show the approving person the client's user agent, next to its address and time.
ALTER TABLE device_logins ADD COLUMN user_agent TEXT;

-- Retention (src/retention): what the pruner looks rows up by.
CREATE INDEX device_logins_expires ON device_logins(expires_at);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX api_tokens_expires ON api_tokens(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX api_tokens_revoked ON api_tokens(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX builds_finished ON builds(finished_at) WHERE finished_at IS NOT NULL;
