/**
 * @module health/registry.test
 * Covers HealthRegistry.report: the overall status aggregates pass < warn < fail, each check is
 * reported under its name with a time, async checks are awaited, and a throwing (or rejecting)
 * check becomes a fail carrying its message.
 */
import { describe, expect, test } from "bun:test";
import { HealthRegistry, type CheckStatus } from "./registry.ts";

function registryOf(statuses: CheckStatus[]): HealthRegistry {
  const r = new HealthRegistry();
  statuses.forEach((status, i) => r.register({ name: `c:${i}`, run: () => ({ status }) }));
  return r;
}

describe("HealthRegistry.report", () => {
  const cases: [CheckStatus[], CheckStatus][] = [
    [[], "pass"],
    [["pass"], "pass"],
    [["pass", "pass"], "pass"],
    [["pass", "warn"], "warn"],
    [["warn", "pass"], "warn"],
    [["warn", "fail"], "fail"],
    [["fail", "warn"], "fail"],
    [["fail", "pass", "warn"], "fail"],
    [["pass", "fail"], "fail"],
  ];
  for (const [statuses, expected] of cases) {
    test(`[${statuses.join(", ")}] → ${expected}`, async () => {
      expect((await registryOf(statuses).report("1.0.0")).status).toBe(expected);
    });
  }

  test("reports each check under its name with output, observed value and a time", async () => {
    const r = new HealthRegistry();
    r.register({ name: "database:migrations", run: () => ({ status: "pass", observedValue: 2 }) });
    r.register({ name: "volumes:dm-crypt", run: async () => ({ status: "warn", output: "no dm-crypt on this host" }) });
    const before = Date.now();
    const report = await r.report("9.9.9");
    expect(report.version).toBe("9.9.9");
    expect(report.status).toBe("warn");
    expect(Object.keys(report.checks)).toEqual(["database:migrations", "volumes:dm-crypt"]);
    expect(report.checks["database:migrations"]).toEqual([
      { status: "pass", observedValue: 2, time: expect.any(String) },
    ]);
    expect(report.checks["volumes:dm-crypt"]).toMatchObject([{ status: "warn", output: "no dm-crypt on this host" }]);
    const time = Date.parse(report.checks["volumes:dm-crypt"]![0]!.time);
    expect(time).toBeGreaterThanOrEqual(before - 1);
    expect(time).toBeLessThanOrEqual(Date.now());
  });

  test("a throwing or rejecting check is a fail with its message, and the others still run", async () => {
    const r = new HealthRegistry();
    r.register({
      name: "docker:ping",
      run: () => {
        throw new Error("connect ENOENT /var/run/docker.sock");
      },
    });
    r.register({ name: "disk:free", run: () => Promise.reject(new Error("statfs failed")) });
    let ran = false;
    r.register({
      name: "database:open",
      run: () => {
        ran = true;
        return { status: "pass" };
      },
    });
    const report = await r.report("1");
    expect(report.status).toBe("fail");
    expect(ran).toBe(true);
    expect(report.checks["docker:ping"]).toMatchObject([
      { status: "fail", output: "connect ENOENT /var/run/docker.sock" },
    ]);
    expect(report.checks["disk:free"]).toMatchObject([{ status: "fail", output: "statfs failed" }]);
    expect(report.checks["database:open"]).toMatchObject([{ status: "pass" }]);
  });

  test("checks run again on every report", async () => {
    const r = new HealthRegistry();
    let status: CheckStatus = "pass";
    r.register({ name: "x:y", run: () => ({ status }) });
    expect((await r.report("1")).status).toBe("pass");
    status = "fail";
    expect((await r.report("1")).status).toBe("fail");
  });
});
