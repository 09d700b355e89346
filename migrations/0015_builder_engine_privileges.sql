-- Docker engines that refused a privileged builder container (owned by the builders service,
-- src/builders/engine-privileges.ts). Remembered across restarts so that a builder start on such
-- an engine goes straight to the fallback profile instead of paying for a refused attempt first.
-- Keyed by the engine's identity (its ID, version, kernel and security options: see
-- engine.identity()) and the OCI runtime asked for ('' for the engine's default): a changed
-- engine has no row and is asked for privileged again.
CREATE TABLE builder_engine_privileges (
  engine_identity  TEXT NOT NULL,
  oci_runtime      TEXT NOT NULL,
  refusal          TEXT NOT NULL,
  refused_at       TEXT NOT NULL,
  PRIMARY KEY (engine_identity, oci_runtime)
) STRICT;
