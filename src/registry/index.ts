/**
 * @module registry
 * The appliance's registry for saved builds (`depot build --save`, `depot pull`, `--load` through
 * the registry): Debian's docker-registry supervised by serve, reached through serve's HTTPS
 * listener, with Slipway as its token service.
 */
export { registryServiceFactory, builderRegistryHost, BUILDER_ALIAS, type RegistryService } from "./service.ts";
