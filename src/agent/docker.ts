/**
 * @module agent/docker
 * docker:NAME scopes: the bridge interfaces of Docker networks, from the Docker Engine API, and
 * Docker's network events (the events API over the socket), so that a network removed and
 * re-created is looked up again at once instead of at the next poll.
 * User-defined networks use `br-<first 12 hex of the id>` unless created with the
 * com.docker.network.bridge.name option (the default network: docker0).
 */
import Docker from "dockerode";

interface NetworkInfo {
  Id: string;
  Name: string;
  Driver: string;
  Options?: Record<string, string>;
}

const bridgeName = (n: NetworkInfo) => n.Options?.["com.docker.network.bridge.name"] ?? `br-${n.Id.slice(0, 12)}`;

export interface DockerNetworks {
  /** Every bridge network: name → bridge interface. Throws when Docker cannot be asked. */
  list(): Promise<Map<string, string>>;
  /** Calls `onChange` on each network event (create, destroy, connect, disconnect) until the
   * returned function is called; reconnects when the stream ends (Docker restarted). */
  watch(onChange: () => void, onError?: (e: unknown) => void): () => void;
}

export function dockerNetworks(docker = new Docker()): DockerNetworks {
  return {
    async list() {
      const nets = (await docker.listNetworks()) as NetworkInfo[];
      return new Map(nets.filter((n) => n.Driver === "bridge").map((n) => [n.Name, bridgeName(n)]));
    },
    watch(onChange, onError) {
      let stopped = false;
      let stream: NodeJS.ReadableStream | null = null;
      const connect = async (): Promise<void> => {
        while (!stopped) {
          try {
            stream = (await docker.getEvents({ filters: { type: ["network"] } })) as NodeJS.ReadableStream;
            // Events arrive as JSON objects; which one does not matter, only that something changed.
            const ended = new Promise<void>((resolve) => {
              stream!.on("data", () => onChange());
              stream!.on("end", resolve);
              stream!.on("error", resolve);
              stream!.on("close", resolve);
            });
            onChange(); // anything missed while (re)connecting
            await ended;
          } catch (e) {
            onError?.(e);
          }
          if (!stopped) await Bun.sleep(1000);
        }
      };
      void connect();
      return () => {
        stopped = true;
        (stream as unknown as { destroy?: () => void } | null)?.destroy?.();
      };
    },
  };
}
