/**
 * @module builders/network.test
 * A builder network the engine cannot create because its address pools are used up is refused
 * as no capacity, naming the setting that helps. The engine is a stand-in answering with the
 * error Docker gives (real networks: test/e2e/builders.test.ts).
 */
import type Docker from "dockerode";
import { expect, test } from "bun:test";
import { ResourceExhaustedError } from "../errors.ts";
import { silentLogger } from "../log/logger.ts";
import { ensureProjectNetwork } from "./network.ts";

test("used-up address pools: resource exhausted, naming builders.max_running", async () => {
  const docker = {
    getNetwork: () => ({
      inspect: async () => Promise.reject(Object.assign(new Error("network not found"), { statusCode: 404 })),
    }),
    createNetwork: async () =>
      Promise.reject(
        new Error(
          "(HTTP code 400) unexpected - could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
        ),
      ),
  } as unknown as Docker;
  const e = await ensureProjectNetwork(
    docker,
    { name: "n", projectId: "prj_1", labels: {}, projectLabel: "p" },
    silentLogger,
  ).catch((x: Error) => x);
  expect(e).toBeInstanceOf(ResourceExhaustedError);
  expect((e as Error).message).toContain("lower builders.max_running");
});
