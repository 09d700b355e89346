-- Per-organization quotas set by the administrator. A NULL column means the [quotas] default of
-- the configuration; a row exists only once an override was set.
CREATE TABLE org_quotas (
  org_id                 TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
  max_projects           INTEGER CHECK (max_projects BETWEEN 0 AND 100000),
  max_builder_cpus       INTEGER CHECK (max_builder_cpus BETWEEN 1 AND 256),
  max_builder_memory_mb  INTEGER CHECK (max_builder_memory_mb BETWEEN 256 AND 1048576),
  max_cache_size_gb      INTEGER CHECK (max_cache_size_gb BETWEEN 1 AND 10000),
  max_running_builders   INTEGER CHECK (max_running_builders BETWEEN 0 AND 1000),
  updated_at             TEXT NOT NULL
) STRICT;
