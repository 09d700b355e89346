/**
 * @module builders/addresses
 * Every running builder's address on its network, published whenever that set changes: the
 * runners' egress rules allow them.
 */
import type { Logger } from "../log/logger.ts";
import type { BuilderEngine } from "./engine.ts";

export function builderAddressesFactory({
  engine,
  log,
  onAddresses,
}: {
  engine: Pick<BuilderEngine, "address">;
  log: Logger;
  onAddresses?: (addrs: string[]) => void;
}) {
  /** builder id → its address on its network. */
  const addresses = new Map<string, string>();
  const publish = () => {
    try {
      onAddresses?.([...new Set(addresses.values())]);
    } catch (e) {
      log.warn("publishing builder addresses failed", { error: (e as Error).message });
    }
  };
  return {
    async learn(builderId: string, containerId: string): Promise<void> {
      const address = await engine.address(containerId);
      if (address) addresses.set(builderId, address);
      publish();
    },
    forget(builderId: string): void {
      if (addresses.delete(builderId)) publish();
    },
  };
}
