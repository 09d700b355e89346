/**
 * @module test/e2e/serve-ports
 * The test helper `serve()` when its port is taken between the probe and the child's bind: the
 * compiled serve refuses the port, and the helper starts it again on other ports. The collision
 * is forced, not waited for: the first attempt is handed a port this test is listening on.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slipwayBinary } from "../support/binary.ts";
import { removeBuildersOfServed } from "../support/builder-cleanup.ts";
import { freePorts, PORT_TAKEN, serve, type Served } from "../support/serve.ts";

const work = mkdtempSync(join(tmpdir(), "slipway-serve-ports-"));
const started: Served[] = [];

afterAll(async () => {
  for (const s of started) if (s.proc.exitCode === null) await s.stop();
  await removeBuildersOfServed();
  rmSync(work, { recursive: true, force: true });
});

/** A listener on a port of freePorts' range, held until closed: the port a child would lose. */
async function occupied(): Promise<{ port: number; server: Server }> {
  const [port] = (await freePorts(1)) as [number];
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, resolve);
  });
  return { port, server };
}

test("a port taken before serve binds it: serve() starts again on other ports, and serve answers there", async () => {
  const taken = await occupied();
  const picked: number[][] = [];
  try {
    const s = await serve(
      slipwayBinary(),
      join(work, "retried"),
      ["--set", "volumes.encryption=none"],
      {},
      {
        // The first attempt gets the occupied port as its API port; later ones what freePorts finds.
        pickPorts: async (n) => {
          const ports = picked.length === 0 ? [taken.port, ...(await freePorts(n - 1))] : await freePorts(n);
          picked.push(ports);
          return ports;
        },
      },
    );
    started.push(s);
    expect(picked.length).toBe(2);
    expect(picked[0]![0]).toBe(taken.port);
    expect(Number(new URL(s.url).port)).toBe(picked[1]![0]!);
    expect(Number(new URL(s.url).port)).not.toBe(taken.port);
    expect((await s.get("/readyz")).status).toBe(200);
  } finally {
    taken.server.close();
  }
}, 120_000);

test("the control: a port that stays taken on every attempt fails serve() with serve's own refusal, after five attempts", async () => {
  const taken = await occupied();
  let attempts = 0;
  try {
    const e = await serve(
      slipwayBinary(),
      join(work, "refused"),
      ["--set", "volumes.encryption=none"],
      {},
      {
        pickPorts: async (n) => (attempts++, [taken.port, ...(await freePorts(n - 1))]),
      },
    ).then(
      (s) => (started.push(s), null),
      (x: Error) => x,
    );
    expect(e).not.toBeNull();
    expect(e!.message).toMatch(PORT_TAKEN);
    expect(e!.message).toContain(String(taken.port));
    expect(attempts).toBe(5);
  } finally {
    taken.server.close();
  }
}, 120_000);
