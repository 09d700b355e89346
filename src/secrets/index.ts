/**
 * @module secrets
 * The master key and the AES-256-GCM sealing of secrets at rest. (A room of its own: both
 * pki and volumes need it, and neither should own it.)
 */
export {
  loadOrCreateMasterKey,
  locateMasterKey,
  MASTER_KEY_FILE,
  SYSTEMD_CREDENTIAL,
  type MasterKeyMaterial,
  type MasterKeySource,
} from "./master-key.ts";
export { createSealer, SealedSecretError, type Sealer } from "./sealer.ts";
