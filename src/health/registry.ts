/**
 * @module health/registry
 * Readiness checks in the shape of the IETF "Health Check Response Format for HTTP APIs"
 * (application/health+json). Capabilities register their own checks; `/readyz` runs them all.
 * A `warn` check does not make the appliance unready (e.g. "no dm-crypt on this host").
 */

export type CheckStatus = "pass" | "warn" | "fail";

export interface CheckResult {
  status: CheckStatus;
  output?: string;
  observedValue?: string | number | boolean;
}

export interface HealthCheck {
  /** `component:measurement`, e.g. `database:migrations`. */
  name: string;
  run(): CheckResult | Promise<CheckResult>;
}

export interface HealthReport {
  status: CheckStatus;
  version: string;
  checks: Record<string, (CheckResult & { time: string })[]>;
}

export class HealthRegistry {
  private checks: HealthCheck[] = [];

  register(check: HealthCheck): void {
    this.checks.push(check);
  }

  async report(version: string): Promise<HealthReport> {
    const checks: HealthReport["checks"] = {};
    let status: CheckStatus = "pass";
    for (const c of this.checks) {
      let r: CheckResult;
      try {
        r = await c.run();
      } catch (e) {
        r = { status: "fail", output: e instanceof Error ? e.message : String(e) };
      }
      checks[c.name] = [{ ...r, time: new Date().toISOString() }];
      if (r.status === "fail") status = "fail";
      else if (r.status === "warn" && status === "pass") status = "warn";
    }
    return { status, version, checks };
  }
}
