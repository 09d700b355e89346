/**
 * @module pki
 * The appliance's certificate authority: root → intermediates by purpose → leaves.
 */
export { pkiServiceFactory, type Pki, type CaPurpose, type IssuedLeaf, type LeafRequest } from "./authority.ts";
