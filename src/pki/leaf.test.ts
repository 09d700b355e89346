/**
 * @module pki/leaf.test
 * The issuance queue's yielding: a job that finds the queue idle runs before anything else waiting
 * on the event loop (no turn lost per certificate under concurrent admissions), while a burst
 * still lets timers and sockets in between its jobs once the budget is spent. Order only, no
 * timing: the budget is 0 ms, so any work spends it.
 */
import { describe, expect, test } from "bun:test";
import { yieldingQueue } from "./leaf.ts";

/** Work that spends the budget and outlasts a 0 ms timer's delay (Bun rounds it up to 1 ms), so
 * that timer is due when the queue decides whether to yield. */
const busy = () => {
  const t = performance.now();
  while (performance.now() - t < 2) {}
};

describe("yieldingQueue", () => {
  test("a job on an idle queue runs before a timer set just before it, even after an earlier burst", async () => {
    const queue = yieldingQueue(0);
    await Promise.all([1, 2, 3].map(() => queue(busy))); // spends the budget, then the queue empties
    const order: string[] = [];
    setTimeout(() => order.push("timer"), 0);
    busy(); // the timer is due
    await queue(() => order.push("job"));
    await Bun.sleep(1);
    expect(order).toEqual(["job", "timer"]);
  });

  test("a burst lets a waiting timer run between its jobs once the budget is spent", async () => {
    const queue = yieldingQueue(0);
    const order: string[] = [];
    setTimeout(() => order.push("timer"), 0);
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        queue(() => {
          busy();
          order.push(`job${i}`);
        }),
      ),
    );
    expect(order).toEqual(["job1", "timer", "job2", "job3", "job4"]);
  });

  test("a failing job does not stop the ones after it", async () => {
    const queue = yieldingQueue(0);
    const failed = queue(() => {
      throw new Error("no");
    });
    const next = queue(() => "next");
    await expect(failed).rejects.toThrow("no");
    expect(await next).toBe("next");
  });
});
