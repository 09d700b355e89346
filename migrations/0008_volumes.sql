-- Encrypted cache volumes: one per (project, platform). The row and the volume's wrapped LUKS
-- key are written in one transaction before the device is formatted, so a header on disk is
-- always openable with a stored key. `state`: creating (header may be half-made; recreated on
-- start), ready, erasing (crypto-erase under way; finished on start). A per-volume key rotation
-- keeps the new wrapped key in pending_* until cryptsetup holds it in a second keyslot.
CREATE TABLE volumes (
  id                      TEXT PRIMARY KEY,
  project_id              TEXT NOT NULL,
  platform                TEXT NOT NULL,
  backend                 TEXT NOT NULL CHECK (backend IN ('file', 'lvm')),
  device                  TEXT NOT NULL,
  filesystem              TEXT NOT NULL CHECK (filesystem IN ('ext4', 'xfs')),
  size_bytes              INTEGER NOT NULL,
  state                   TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'erasing')),
  key_generation          INTEGER NOT NULL,
  sealed_key              BLOB NOT NULL,
  rotation                TEXT CHECK (rotation IN ('adding', 'killing')),
  pending_key_generation  INTEGER,
  pending_sealed_key      BLOB,
  created_at              TEXT NOT NULL,
  updated_at              TEXT NOT NULL,
  UNIQUE (project_id, platform)
) STRICT;
